"""Channels: e-mail over SMTP (aiosmtplib), webhooks (JSON POST signed with HMAC-SHA256) and the
outbox (stored, not delivered: the default for e-mail when no SMTP host is configured).

A channel gets a batch of rendered messages and returns, per message, ``None`` (delivered) or
the error text. SMS and push are webhook profiles: the same channel, another URL and consent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from abc import ABC, abstractmethod
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from recsys.campaigns.guards import unsubscribe_token
from recsys.campaigns.settings import CampaignSettings

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Recsys-Signature"


class Channel(ABC):
    """Delivers rendered messages (dicts with ``key``, ``recipient``, ``subject``, ``text``,
    ``html``, ``url``, ``user_id``, ``campaign_id``, ``items``)."""

    @abstractmethod
    def deliver(self, messages: list[dict[str, Any]]) -> list[str | None]:
        """Per message: None when delivered, else the error."""


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

    async def _send_all(self, messages: list[dict[str, Any]]) -> list[str | None]:
        s = self.settings
        client = aiosmtplib.SMTP(
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
            for message in messages:
                try:
                    await client.send_message(self._email(message))
                    out.append(None)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    out.append(f"smtp: {exc}")
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        return out

    def deliver(self, messages: list[dict[str, Any]]) -> list[str | None]:
        if not messages:
            return []
        return asyncio.run(self._send_all(messages))


def signature(secret: bytes, body: bytes) -> str:
    """The webhook signature header value: ``sha256=<hex HMAC of the body>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookChannel(Channel):
    """POSTs each message as JSON to its ``url``, signed, with an ``Idempotency-Key`` header."""

    def __init__(self, secret: bytes, timeout_s: float = 10.0, transport=None) -> None:
        self.secret = secret
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def deliver(self, messages: list[dict[str, Any]]) -> list[str | None]:
        out: list[str | None] = []
        for message in messages:
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
                out.append(f"webhook: {type(exc).__name__}: {exc}")
                continue
            ok = 200 <= response.status_code < 300
            out.append(None if ok else f"webhook: HTTP {response.status_code}")
        return out


def make_channels(settings: CampaignSettings) -> dict[str, Channel]:
    """Channel per name; e-mail is absent (outbox) when no SMTP host is configured."""
    hook = WebhookChannel(settings.secret(), settings.webhook_timeout_s)
    channels: dict[str, Channel] = {"webhook": hook, "sms": hook, "push": hook}
    if settings.smtp_host:
        channels["email"] = SmtpChannel(settings)
    return channels
