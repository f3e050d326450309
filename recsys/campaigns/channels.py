"""Channels: e-mail over SMTP (aiosmtplib), webhooks (JSON POST signed with HMAC-SHA256) and the
outbox (stored, not delivered: the default for e-mail when no SMTP host is configured).

A channel gets a batch of rendered messages and returns, per message, ``None`` (delivered) or
the error text. It reports its progress as it goes (:class:`Progress`): right before a message
leaves (for SMTP: after the envelope was accepted, before DATA) and once its outcome is known, so
the deliverer can record each message as it happens and a worker killed mid-batch leaves at most
one message in doubt. SMS and push are webhook profiles: the same channel, another URL and consent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from recsys.campaigns.guards import unsubscribe_token
from recsys.campaigns.settings import CampaignSettings

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Recsys-Signature"
SKIPPED = "skipped: the delivery lease was lost (another worker took the message over)"


class Progress:
    """What a channel reports while it delivers a batch (this base ignores it)."""

    def handover(self, index: int) -> bool:
        """Message ``index`` is about to leave; False: do not send it (result :data:`SKIPPED`)."""
        return True

    def done(self, index: int, error: str | None) -> None:
        """Message ``index`` was delivered (``error`` None) or failed."""


class Channel(ABC):
    """Delivers rendered messages (dicts with ``key``, ``recipient``, ``subject``, ``text``,
    ``html``, ``url``, ``user_id``, ``campaign_id``, ``items``)."""

    @abstractmethod
    def deliver(
        self, messages: list[dict[str, Any]], progress: Progress | None = None
    ) -> list[str | None]:
        """Per message: None when delivered, :data:`SKIPPED`, or the error."""


class _LeaseLost(Exception):
    pass


class _HandoverSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, asking ``handover`` between the accepted envelope and DATA: the
    latest point before the server can take the message (it keeps nothing of a transaction
    whose connection drops before the data's final dot)."""

    handover: Callable[[], bool] = staticmethod(lambda: True)

    async def data(self, message, /, **kwargs):
        if not self.handover():
            raise _LeaseLost
        return await super().data(message, **kwargs)


class SmtpChannel(Channel):
    """E-mail over one SMTP connection per batch (STARTTLS and login when configured)."""

    def __init__(self, settings: CampaignSettings) -> None:
        self.settings = settings
        self.secret = settings.secret()
        self.base_url = settings.public_url.rstrip("/")

    def _email(self, message: dict[str, Any]) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_from
        mail["To"] = message["recipient"]
        mail["Subject"] = message["subject"]
        # The idempotency key is the Message-ID: a receiver can drop a duplicate by it.
        mail["Message-ID"] = f"<{message['key'].replace(':', '.')}@recsys>"
        token = unsubscribe_token(self.secret, message["user_id"], "email")
        mail["List-Unsubscribe"] = f"<{self.base_url}/v1/unsubscribe?token={token}>"
        mail.set_content(message["text"] or " ")
        if message.get("html"):
            mail.add_alternative(message["html"], subtype="html")
        return mail

    async def _send_all(self, messages: list[dict[str, Any]], progress: Progress
                        ) -> list[str | None]:  # fmt: skip
        s = self.settings
        client = _HandoverSMTP(
            hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls, timeout=30
        )
        try:
            await client.connect()
            if s.smtp_username and s.smtp_password:
                await client.login(s.smtp_username, s.smtp_password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return [f"smtp connect: {exc}"] * len(messages)
        out: list[str | None] = []
        try:
            for index, message in enumerate(messages):
                client.handover = lambda index=index: progress.handover(index)
                try:
                    await client.send_message(self._email(message))
                    error = None
                except _LeaseLost:
                    out.append(SKIPPED)
                    try:  # drop the envelope so the next message can start its own
                        await client.rset()
                    except (aiosmtplib.SMTPException, OSError):
                        pass
                    continue
                except (aiosmtplib.SMTPException, OSError) as exc:
                    error = f"smtp: {exc}"
                progress.done(index, error)
                out.append(error)
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        return out

    def deliver(
        self, messages: list[dict[str, Any]], progress: Progress | None = None
    ) -> list[str | None]:
        if not messages:
            return []
        return asyncio.run(self._send_all(messages, progress or Progress()))


def signature(secret: bytes, body: bytes) -> str:
    """The webhook signature header value: ``sha256=<hex HMAC of the body>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookChannel(Channel):
    """POSTs each message as JSON to its ``url``, signed, with an ``Idempotency-Key`` header."""

    def __init__(self, secret: bytes, timeout_s: float = 10.0, transport=None) -> None:
        self.secret = secret
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def deliver(
        self, messages: list[dict[str, Any]], progress: Progress | None = None
    ) -> list[str | None]:
        progress = progress or Progress()
        out: list[str | None] = []
        for index, message in enumerate(messages):
            if not progress.handover(index):
                out.append(SKIPPED)
                continue
            payload = {
                k: message.get(k)
                for k in ("key", "campaign_id", "user_id", "channel", "recipient", "subject",
                          "text", "html", "items")
            }  # fmt: skip
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(self.secret, body),
                "Idempotency-Key": message["key"],
            }
            try:
                response = self.client.post(message["url"], content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"webhook: {type(exc).__name__}: {exc}"
            else:
                ok = 200 <= response.status_code < 300
                error = None if ok else f"webhook: HTTP {response.status_code}"
            progress.done(index, error)
            out.append(error)
        return out


def make_channels(settings: CampaignSettings) -> dict[str, Channel]:
    """Channel per name; e-mail is absent (outbox) when no SMTP host is configured."""
    hook = WebhookChannel(settings.secret(), settings.webhook_timeout_s)
    channels: dict[str, Channel] = {"webhook": hook, "sms": hook, "push": hook}
    if settings.smtp_host:
        channels["email"] = SmtpChannel(settings)
    return channels
