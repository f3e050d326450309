"""The sharded membership pass equals the unsharded refresh, on both store backends.

Two stores start from the same shop and segments; one is refreshed in one pass, the other over
three user-id shards (run one after another here; as Ray tasks in tests/cluster). Then the clock
moves on a year and both are refreshed again, so exits are compared too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from recsys.errors import InvalidInputError
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh
from recsys.segments.shards import plan_shards, shard_customers
from recsys.store import Store
from tests.recsys.store.conftest import _postgres_schema
from tests.utils.factories import make_shop
from tests.utils.segment_state import fill_store, segment_state


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("shards") / "shop", users=150, items=60)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request, tmp_path, shop) -> Iterator[tuple[Store, Store]]:
    """Two stores of one backend holding the same shop and segments."""
    if request.param == "sqlite":
        stores = [Store.open(f"sqlite:///{tmp_path / f'{n}.db'}") for n in ("one", "two")]
        for store in stores:
            fill_store(store, shop)
        yield tuple(stores)
        for store in stores:
            store.close()
        return
    with _postgres_schema() as first, _postgres_schema() as second:
        stores = [Store.open(db.url, connect_args=db.connect_args) for db in (first, second)]
        for store in stores:
            fill_store(store, shop)
        yield tuple(stores)
        for store in stores:
            store.close()


def test_shards_partition_the_customers_in_user_id_order(two_stores):
    store = two_stores[0]
    everyone = [u for ids in shard_customers(store, plan_shards(store, 1)[0]) for u in ids]
    assert len(everyone) == 150 and everyone == sorted(everyone)
    plan = plan_shards(store, 4)
    assert plan[0].after is None and plan[-1].upto is None
    assert all(a.upto == b.after for a, b in zip(plan, plan[1:], strict=False))
    parts = [[u for ids in shard_customers(store, s, chunk=7) for u in ids] for s in plan]
    assert [u for part in parts for u in part] == everyone
    assert sorted(len(p) for p in parts) == [37, 37, 38, 38]
    assert len(plan_shards(store, 1000)) == 150  # never an empty shard
    with pytest.raises(InvalidInputError, match="shards: must be at least 1"):
        plan_shards(store, 0)


def test_a_sharded_refresh_writes_what_one_pass_writes(two_stores):
    whole, sharded = two_stores
    now = datetime(2026, 4, 1, tzinfo=UTC)
    for _ in range(2):  # the second round, a year later, makes exits too
        one = refresh(whole, engine=SegmentEngine(whole, clock=lambda t=now: t))
        split = refresh(sharded, engine=SegmentEngine(sharded, clock=lambda t=now: t), shards=3)
        assert [s["customers"] for s in split["shards"]] == [50, 50, 50]
        assert split["changes"] == sum(s["changes"] for s in split["shards"]) == one["changes"]
        assert segment_state(sharded) == segment_state(whole)
        now += timedelta(days=365)
    members, events = segment_state(sharded)
    assert {s for s, _ in members} >= {"big-spenders", "viewers", "half"}
    assert events[("recent-buyers", "exit")] == events[("recent-buyers", "entry")] > 0
