"""End to end against a real SMTP server (aiosmtpd) on both backends: add_to_cart, no purchase,
after the injected hour exactly one e-mail with in-stock recommendations; a buyer, an opted-out
and a capped customer get none. Plus the webhook channel: signed, retried, dead-lettered."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socket
from email import policy

import httpx
import pytest
from aiosmtpd.controller import Controller

from recsys.campaigns.channels import SIGNATURE_HEADER, SmtpChannel, WebhookChannel
from recsys.campaigns.settings import campaign_settings
from tests.recsys.campaigns.conftest import CART_TEMPLATE, cart_campaign


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller's own check cannot use 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_one_email_after_the_hour(service, shop_store, ingest, make_worker, clock, items, smtp):
    inbox, port = smtp
    settings = campaign_settings(campaign_secret="s" * 32, smtp_host="127.0.0.1", smtp_port=port,
                                 smtp_from="shop@example.com", frequency_cap=1)  # fmt: skip
    service.put_template(CART_TEMPLATE)
    service.create(cart_campaign(), "cart", status="active")
    for user in ("abandoner", "buyer", "opted-out", "capped"):
        shop_store.customers.put(
            user, {"email": f"{user}@example.com", "consents": {"email": user != "opted-out"}}
        )
    worker = make_worker(channels={"email": SmtpChannel(settings)})
    worker.sends.settings = settings  # the cap of 1 applies
    # "capped" already got an e-mail this week from another campaign (an API-triggered one).
    service.put_template({"id": "hello", "text": "hello"})
    hello = {"name": "Hello", "trigger": {"type": "api"}, "start": "m",
             "steps": {"m": {"type": "send", "channel": "email", "template": "hello"}}}  # fmt: skip
    service.create(hello, "hello", status="active")
    service.trigger("hello", ["capped"], now=clock.now)
    worker.run_once()
    assert [m["To"] for m in inbox.messages] == ["capped@example.com"]
    inbox.messages.clear()
    item = items.item_id[0]
    for user in ("abandoner", "buyer", "opted-out", "capped"):
        ingest(user, "add_to_cart", item, clock.now)
    worker.run_once()
    clock.advance(minutes=20)
    ingest("buyer", "purchase", item, clock.now, value=9.5)
    worker.run_once()
    clock.advance(minutes=39)
    worker.run_once()
    assert inbox.messages == []
    clock.advance(minutes=1)
    worker.run_once()
    clock.advance(hours=5)
    worker.run_once()
    (mail,) = inbox.messages
    assert mail["To"] == "abandoner@example.com" and mail["From"] == "shop@example.com"
    assert mail["List-Unsubscribe"].startswith("<http") and mail["Message-ID"].endswith("@recsys>")
    text = mail.get_body(("plain",)).get_content()
    recommended = [line.split()[1] for line in text.splitlines() if line.startswith("* ")]
    assert len(recommended) == 3 and item not in recommended
    assert all(shop_store.items.get(i)["in_stock"] for i in recommended)


def test_webhook_is_signed_retried_and_dead_lettered(service, shop_store, make_worker, clock):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500 if len(calls) <= 3 else 200)

    hook = WebhookChannel(b"w" * 32, transport=httpx.MockTransport(handler))
    service.put_template({"id": "sms", "text": "Hi {{ customer.user_id }}"})
    definition = {"name": "SMS", "trigger": {"type": "api"}, "start": "m",
                  "steps": {"m": {"type": "send", "channel": "sms", "template": "sms",
                                  "url": "https://sms.example/send"}}}  # fmt: skip
    service.create(definition, "sms", status="active")
    for user in ("x", "y"):
        shop_store.customers.put(user, {"consents": {"sms": True}})
    worker = make_worker(channels={"sms": hook})
    worker.deliverer.max_attempts = 2
    service.trigger("sms", ["x", "y"], now=clock.now)
    worker.run_once()  # x: 500, y: 500
    assert len(calls) == 2 and worker.run_once()["delivered"] == 0  # back-off: not yet
    clock.advance(seconds=31)
    worker.run_once()  # x: 500 -> dead, y: 200
    body = calls[0].content
    assert (
        calls[0].headers[SIGNATURE_HEADER]
        == "sha256=" + hmac.new(b"w" * 32, body, hashlib.sha256).hexdigest()
    )
    assert calls[0].headers["Idempotency-Key"].endswith(":m")
    assert json.loads(body)["text"].startswith("Hi ")
    (dead,) = shop_store.campaigns.dead_letters()
    assert dead["attempts"] == 2 and dead["error"] == "webhook: HTTP 500"
