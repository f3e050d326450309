"""The send step for a batch of enrolments: guards, recommendations, rendering, and the send
rows written under their idempotency keys (in the transaction that runs the steps)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from recsys.campaigns import guards
from recsys.campaigns.definitions import Campaign, Send
from recsys.campaigns.models import Recommenders
from recsys.campaigns.recommend import Want, choose, items_by_id
from recsys.campaigns.settings import CampaignSettings
from recsys.campaigns.templates import CompiledTemplate, TemplateProblem
from recsys.store.campaigns import DueStepRow, EnrolmentRow, MessageRow, SendRow
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.tables import UserProfile

PROFILE_FIELDS = ("event_count", "purchase_count", "revenue", "first_seen", "last_seen")
COLUMNS = ("user_id", "email", "country", "time_zone", "consents", "attributes", *PROFILE_FIELDS)


@dataclass
class PendingSend:
    """A due step standing at a send step."""

    row: DueStepRow
    enrolment: EnrolmentRow
    campaign_id: str
    campaign: Campaign
    step: Send
    outcome: str = ""  # "sent" | "suppressed" | "delayed"


def profiles(session: Session, users: list[str]) -> dict[str, dict[str, Any]]:
    """Customer rows (attributes and aggregates) plus the open cart, by user id."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        stmt = select(*[UserProfile.__table__.c[name] for name in COLUMNS]).where(
            UserProfile.user_id.in_(chunk)
        )
        for row in session.execute(stmt).mappings():
            out[row["user_id"]] = dict(row)
        stmt = select(CustomerAggregate.user_id, CustomerAggregate.cart).where(
            CustomerAggregate.user_id.in_(chunk)
        )
        for user, cart in session.execute(stmt):
            out.setdefault(user, {"user_id": user})["cart"] = sorted((cart or {}).keys())
    return out


class SendBatch:
    """Runs the send steps of one worker batch (see :meth:`run`)."""

    def __init__(self, settings: CampaignSettings, secret: bytes, outbox_channels: set[str],
                 recommenders: Recommenders,
                 templates: dict[str, CompiledTemplate]) -> None:  # fmt: skip
        self.settings = settings
        self.secret = secret
        self.outbox = outbox_channels
        self.recommenders = recommenders
        self.templates = templates

    def run(self, session: Session, sends: list[PendingSend], now: datetime,
            people: dict[str, dict[str, Any]] | None = None) -> None:  # fmt: skip
        """Decide each send's ``outcome``; record the sent and suppressed ones (``people``:
        :func:`profiles` of the senders, when the caller has them)."""
        users = sorted({p.row.user_id for p in sends})
        people = profiles(session, users) if people is None else people
        counts: dict[str, dict[str, int]] = {}
        used = Counter()  # messages per (user, channel) decided in this batch
        budget: dict[str, int] = {}
        records: list[tuple[PendingSend, str, str | None]] = []
        go: list[PendingSend] = []
        for p in sends:
            user, channel = p.row.user_id, p.step.channel
            profile = people.get(user)
            if not guards.has_consent(profile, channel):
                records.append((p, "suppressed", "no consent"))
                continue
            zone = (profile or {}).get("time_zone") or p.campaign.time_zone
            until = guards.quiet_until(p.campaign.quiet_hours, zone, now)
            if until is not None:
                p.outcome, p.row.due_at = "delayed", until
                continue
            if channel not in counts:
                counts[channel] = guards.recent_counts(
                    session, users, channel, self.settings.frequency_cap_days, now
                )
            if counts[channel].get(user, 0) + used[(user, channel)] >= self.settings.frequency_cap:
                records.append((p, "suppressed", "frequency cap"))
                continue
            limit = p.campaign.rate_limit_per_minute
            if limit is not None:
                if p.campaign_id not in budget:
                    budget[p.campaign_id] = limit - guards.sent_recently(
                        session, p.campaign_id, now
                    )
                if budget[p.campaign_id] <= 0:
                    p.outcome, p.row.due_at = "delayed", now + timedelta(minutes=1)
                    continue
                budget[p.campaign_id] -= 1
            used[(user, channel)] += 1
            go.append(p)
        self._render_and_record(session, go, people, now, records)

    def _render_and_record(self, session, go, people, now, records) -> None:
        wants, wanting = [], []
        for p in go:
            if p.step.recommendations is not None:
                basket = people.get(p.row.user_id, {}).get("cart") or []
                trigger_item = (p.enrolment.context or {}).get("item_id")
                if not basket and trigger_item:
                    basket = [trigger_item]
                wants.append(
                    Want(p.row.user_id, p.step.recommendations, p.enrolment.enrolled_at, basket)
                )
                wanting.append(p)
        items, failed = choose(session, wants, self.recommenders, now)
        chosen = dict(zip(map(id, wanting), items, strict=True))
        unloaded = {id(wanting[i]): problem for i, problem in failed.items()}
        carts = items_by_id(
            session, {i for p in go for i in people.get(p.row.user_id, {}).get("cart") or []}
        )
        rendered: dict[int, tuple[dict, list[dict]]] = {}
        for p in go:
            if id(p) in unloaded:  # the arm's model, not another one: the send fails
                records.append((p, "failed", unloaded[id(p)]))
                continue
            items = chosen.get(id(p), [])
            profile = people.get(p.row.user_id) or {"user_id": p.row.user_id}
            cart = [carts[i] for i in profile.get("cart") or [] if i in carts]
            context = self._context(p, profile, items, cart)
            try:
                parts = self.templates[p.step.template].render(context)
            except (TemplateProblem, KeyError) as exc:
                records.append((p, "failed", f"template: {exc}"))
                continue
            rendered[id(p)] = (parts | {"recipient": profile.get("email")}, items)
            if p.step.channel == "email" and not profile.get("email"):
                records.append((p, "suppressed", "no e-mail address"))
                rendered.pop(id(p))
                continue
            delivered = p.step.channel in self.outbox
            records.append((p, "sent" if delivered else "pending", None))
        self._record(session, records, rendered, now)

    def _context(self, p: PendingSend, profile: dict, items: list, cart: list) -> dict[str, Any]:
        token = guards.unsubscribe_token(self.secret, p.row.user_id, p.step.channel)
        base = self.settings.public_url.rstrip("/")
        return {
            "customer": {k: profile.get(k) for k in ("user_id", "email", "country", "time_zone")}
            | {"attributes": profile.get("attributes") or {}},
            "profile": {k: profile.get(k) for k in PROFILE_FIELDS},
            "recommendations": items,
            "cart": cart,
            "campaign": {"id": p.campaign_id, "name": p.campaign.name},
            "trigger": p.enrolment.context or {},
            "arm": p.enrolment.arm,
            "unsubscribe_url": f"{base}/v1/unsubscribe?token={token}",
        }

    def _record(self, session: Session, records, rendered, now: datetime) -> None:
        if not records:
            return
        values = []
        for p, status, reason in records:
            p.outcome = "suppressed" if status in ("suppressed", "failed") else "sent"
            items = [i["item_id"] for i in rendered.get(id(p), (None, []))[1]]
            values.append(
                {"key": f"{p.row.enrolment_id}:{p.row.step_id}", "enrolment_id": p.row.enrolment_id,
                 "campaign_id": p.campaign_id, "user_id": p.row.user_id, "step_id": p.row.step_id,
                 "arm": p.enrolment.arm, "channel": p.step.channel, "status": status,
                 "reason": reason, "items": items, "attempts": 0, "created_at": now,
                 "sent_at": now if status == "sent" else None}
            )  # fmt: skip
        ids = {
            key: send_id
            for send_id, key in session.execute(
                insert(SendRow.__table__).returning(SendRow.id, SendRow.key), values
            )
        }
        messages = []
        for p, _, _ in records:
            if id(p) not in rendered:
                continue
            parts, _ = rendered[id(p)]
            messages.append(
                {"send_id": ids[f"{p.row.enrolment_id}:{p.row.step_id}"], "user_id": p.row.user_id,
                 "campaign_id": p.campaign_id, "channel": p.step.channel,
                 "recipient": parts["recipient"], "subject": parts["subject"],
                 "text": parts["text"], "html": parts["html"], "url": p.step.url,
                 "created_at": now}
            )  # fmt: skip
        if messages:
            session.execute(insert(MessageRow.__table__), messages)
