"""Campaign data for the console tests: an API-triggered A/B campaign (a mail arm and a holdout)
over three days of the recent past, run by the real campaign worker with the served bundle's
engine (e-mail to the outbox: no SMTP host), then purchases after the sends so the report has
conversions in both arms."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from recsys.campaigns.recommend import engine_recommender
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.ingest import EventIngestor
from recsys.store import Store
from recsys.store.campaigns import EnrolmentRow
from recsys.store.db import read_session
from serving.model_server import ModelServer
from serving.settings import Settings

CAMPAIGN = "spring-ab"
SECRET = "console-campaign-secret-" + "x" * 16
TEMPLATE = {
    "id": "spring-picks",
    "subject": "Picked for you, {{ customer.user_id }}",
    "text": "{% for r in recommendations %}{{ r.item_id }}\n{% endfor %}{{ unsubscribe_url }}",
}
DEFINITION = {
    "name": "Spring picks A/B",
    "description": "Personal picks by e-mail against a holdout.",
    "trigger": {"type": "api"},
    "start": "ab",
    "steps": {
        "ab": {"type": "split", "arms": [{"name": "mail", "weight": 3, "next": "mail"},
                                          {"name": "holdout", "weight": 1, "holdout": True}]},
        "mail": {"type": "send", "channel": "email", "template": "spring-picks",
                 "recommendations": {"k": 3}, "next": "wait"},
        "wait": {"type": "wait", "days": 30},
    },
}  # fmt: skip
CUSTOMERS = 100
DAYS = 3


def _converts(user_id: str, share: float) -> bool:
    """A stable pseudo-random pick (no RNG state shared with other seeding)."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return digest[0] / 256 < share


def seed_campaigns(store: Store, settings: Settings) -> str:
    """Seed :data:`CAMPAIGN` and return its id."""
    service = CampaignService(store)
    service.put_template(TEMPLATE)
    service.create(DEFINITION, CAMPAIGN, actor="console-seed", status="active")
    users = store.events.user_ids()[20 : 20 + CUSTOMERS]  # not the tests' first ones
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    server = ModelServer(settings, store.erased_hashes)
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    try:
        worker_settings = campaign_settings(campaign_secret=SECRET)
        per_day = -(-len(users) // DAYS)
        for day in range(DAYS):
            at = today - timedelta(days=DAYS - day)
            service.trigger(CAMPAIGN, users[day * per_day : (day + 1) * per_day], now=at)
            worker = CampaignWorker(store, {"default": engine_recommender(server.engine)},
                                    worker_settings, channels={}, clock=lambda at=at: at
                                    + timedelta(minutes=5), lag_s=0)  # fmt: skip
            worker.run_once()
    finally:
        server.close()
    with read_session(store.engine) as s:
        enrolled = s.execute(
            select(EnrolmentRow.user_id, EnrolmentRow.arm, EnrolmentRow.enrolled_at).where(
                EnrolmentRow.campaign_id == CAMPAIGN
            )
        ).all()
    item_id = str(server.info()["example_item_id"])  # the most popular item
    purchases = [
        {"user_id": user, "item_id": item_id, "event_type": "purchase", "value": 25.0,
         "timestamp": (at + timedelta(hours=3)).isoformat()}
        for user, arm, at in enrolled
        if _converts(user, 0.35 if arm == "mail" else 0.12)
    ]  # fmt: skip
    EventIngestor(store).ingest(purchases)
    return CAMPAIGN
