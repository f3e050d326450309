"""Campaign tests: both store backends, a real engine on a small synthetic shop, a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recsys.bundle import load_bundle
from recsys.campaigns.recommend import engine_recommender
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.data.frame import pd
from recsys.ingest import EventIngestor
from recsys.recommend import RecommendationEngine
from tests.recsys.store.conftest import (  # noqa: F401  (fixtures)
    _shared_postgres,
    engine,
    store,
    store_db,
)
from tests.utils.factories import make_bundle, make_shop

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("campaign-shop") / "shop")


@pytest.fixture(scope="session")
def recommender(shop, tmp_path_factory):
    bundle = make_bundle(shop, tmp_path_factory.mktemp("campaign-bundle") / "bundle")
    return engine_recommender(RecommendationEngine(load_bundle(bundle), device="cpu"))


@pytest.fixture(scope="session")
def items(shop):
    return pd.read_parquet(shop / "items.parquet")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings():
    return campaign_settings(campaign_secret="s" * 32, frequency_cap=2, frequency_cap_days=7)


@pytest.fixture
def shop_store(store, items):  # noqa: F811
    """The store with the shop's catalogue."""
    store.items.upsert(items.to_dict("records"))
    return store


@pytest.fixture
def service(shop_store):
    return CampaignService(shop_store)


@pytest.fixture
def ingest(shop_store):
    ingestor = EventIngestor(shop_store)

    def send(user_id, event_type, item_id, at, **extra):
        record = {"user_id": user_id, "event_type": event_type, "item_id": item_id,
                  "timestamp": at.isoformat(), **extra}  # fmt: skip
        result = ingestor.ingest([record], now=at)
        assert not result.rejected, result.rejected

    return send


@pytest.fixture
def make_worker(shop_store, recommender, settings, clock):
    def make(**kwargs):
        kwargs.setdefault("channels", {})
        return CampaignWorker(shop_store, {"default": recommender}, settings, clock=clock,
                              lag_s=0, **kwargs)  # fmt: skip

    return make


CART_TEMPLATE = {
    "id": "cart",
    "subject": "{{ customer.email }}: still thinking?",
    "text": "{% for r in recommendations %}* {{ r.item_id }} {{ r.title }}\n{% endfor %}"
    "Unsubscribe: {{ unsubscribe_url }}",
    "html": "<ul>{% for r in recommendations %}<li>{{ r.title }}</li>{% endfor %}</ul>",
}


def cart_campaign(**overrides):
    definition = {
        "name": "Cart abandonment",
        "trigger": {"type": "event", "event_type": "add_to_cart"},
        "exit_on": {"event_type": "purchase"},
        "reentry": {"policy": "always"},
        "start": "wait",
        "steps": {
            "wait": {"type": "wait", "hours": 1, "next": "mail"},
            "mail": {
                "type": "send",
                "channel": "email",
                "template": "cart",
                "recommendations": {"kind": "cross_sell", "k": 3},
            },
        },  # fmt: skip
    }
    definition.update(overrides)
    return definition
