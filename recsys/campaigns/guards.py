"""What may hold a message back: consent per channel, the frequency cap across campaigns, quiet
hours in the customer's time zone and a per-campaign rate limit; and the signed unsubscribe token.

Consent and the cap suppress a message (recorded, never sent); quiet hours and the rate limit
only delay it (the step becomes due again when the window opens or the minute has passed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recsys.campaigns.definitions import QuietHours
from recsys.errors import InvalidInputError
from recsys.store.campaigns import SendRow

COUNTED = ("pending", "sending", "sent")  # what uses up the cap and the rate limit


class BadTokenError(InvalidInputError):
    """An unsubscribe token that is malformed or not signed by this service."""


def consent_key(channel: str) -> str:
    """The consent a channel needs (``email``, ``sms``, ``push``; a plain webhook: ``webhook``)."""
    return channel


def has_consent(profile: dict[str, Any] | None, channel: str) -> bool:
    """Only an explicit ``consents[channel] = true`` allows a message."""
    consents = (profile or {}).get("consents") or {}
    return consents.get(consent_key(channel)) is True


def unsubscribe_token(secret: bytes, user_id: str, channel: str) -> str:
    """``base64(user \\0 channel).hmac`` — opaque, URL-safe, verifiable without a lookup."""
    body = base64.urlsafe_b64encode(f"{user_id}\0{channel}".encode()).decode().rstrip("=")
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def read_unsubscribe_token(secret: bytes, token: str) -> tuple[str, str]:
    """``(user_id, channel)`` of a token this service signed.

    Raises
    ------
    BadTokenError
        The token is malformed or its signature does not match.
    """
    body, _, mac = (token or "").partition(".")
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not body or not hmac.compare_digest(mac, expected):
        raise BadTokenError("token: not a valid unsubscribe token")
    try:
        user_id, _, channel = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().partition("\0")
        )
    except (ValueError, UnicodeDecodeError):
        raise BadTokenError("token: not a valid unsubscribe token") from None
    return user_id, channel


def recent_counts(session: Session, users: Iterable[str], channel: str, days: int,
                  now: datetime) -> dict[str, int]:  # fmt: skip
    """Messages each user got on ``channel`` (any campaign) in the last ``days`` (the cap)."""
    users = sorted(set(users))
    out: dict[str, int] = {}
    since = now - timedelta(days=days)
    for start in range(0, len(users), 500):
        stmt = (
            select(SendRow.user_id, func.count())
            .where(
                SendRow.user_id.in_(users[start : start + 500]),
                SendRow.channel == channel,
                SendRow.status.in_(COUNTED),
                SendRow.created_at >= since,
            )
            .group_by(SendRow.user_id)
        )
        out.update(dict(session.execute(stmt).all()))
    return out


def sent_recently(session: Session, campaign_id: str, now: datetime) -> int:
    """Messages the campaign sent (or is sending) in the last minute."""
    stmt = select(func.count()).where(
        SendRow.campaign_id == campaign_id,
        SendRow.status.in_(COUNTED),
        SendRow.created_at > now - timedelta(minutes=1),
    )
    return int(session.scalar(stmt) or 0)


def quiet_until(quiet: QuietHours | None, zone: str | None, now: datetime) -> datetime | None:
    """When the quiet window the customer is in ends (UTC), or None when it is not quiet."""
    if quiet is None or quiet.start == quiet.end:
        return None
    try:
        tz = zoneinfo.ZoneInfo(zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:  # e.g. 12:00-14:00
        inside = quiet.start <= clock < quiet.end
    else:  # over midnight, e.g. 21:00-08:00
        inside = clock >= quiet.start or clock < quiet.end
    if not inside:
        return None
    end_day = local.date()
    if quiet.start > quiet.end and clock >= quiet.start:
        end_day += timedelta(days=1)
    end = datetime.combine(end_day, _naive(quiet.end), tzinfo=tz)
    return end.astimezone(now.tzinfo)


def _naive(value: time) -> time:
    return value.replace(tzinfo=None)
