"""The live catalogue without Ray: PUT/DELETE /v1/items reach the next answer of every model
server (real SQLite store, real bundle), and the store's change feed behind it."""

from __future__ import annotations

import threading

import numpy as np

from recsys.store.bulk import import_items
from recsys.store.catalogue_feed import CatalogueFeed
from serving.model_server import ModelServer
from tests.utils.http import auth


def _ids(body: dict) -> list[str]:
    return [row["item_id"] for row in body["items"]]


def test_put_and_delete_reach_the_next_answer(client, keys, server):
    read, ingest = auth(keys["read"]), auth(keys["ingest"])
    user = server.info()["example_user_id"]
    first = _ids(client.get(f"/v1/users/{user}/recommendations?k=10", headers=read).json())
    gone, deleted = first[0], first[1]
    changes = [{"item_id": gone, "stock": 0}, {"item_id": deleted}]  # DELETE needs it stored
    put = client.put("/v1/items", json={"items": changes}, headers=ingest)
    assert put.json()["accepted"] == 2
    assert client.delete(f"/v1/items/{deleted}", headers=ingest).status_code == 200
    after = _ids(client.get(f"/v1/users/{user}/recommendations?k=10", headers=read).json())
    assert gone not in after and deleted not in after and len(after) == 10
    similar = client.get(f"/v1/items/{first[2]}/similar?k=50", headers=read).json()
    assert gone not in _ids(similar) and deleted not in _ids(similar)
    client.put("/v1/items", json={"items": [{"item_id": gone, "stock": 3}]}, headers=ingest)
    back = client.get(f"/v1/users/{user}/recommendations?k=10", headers=read).json()
    assert gone in _ids(back)
    assert server.info()["catalogue_seq"] == 3


def test_a_new_item_is_served_right_after_its_put(client, keys, server):
    read, ingest = auth(keys["read"]), auth(keys["ingest"])
    engine = server.engine
    anchor = str(engine.item_ids[engine.popular_order[0]])
    category = str(engine.catalogue.category[engine.popular_order[0]])
    price = float(engine.catalogue.price[engine.popular_order[0]])
    item = {"item_id": "brand-new", "title": "Brand new", "category": category, "price": price}
    assert client.put("/v1/items", json={"items": [item]}, headers=ingest).json()["accepted"] == 1
    similar = client.get(f"/v1/items/{anchor}/similar?k=10", headers=read).json()
    assert "brand-new" in _ids(similar)
    row = next(r for r in similar["items"] if r["item_id"] == "brand-new")
    assert row["title"] == "Brand new" and row["category"] == category
    mine = client.get("/v1/items/brand-new/similar?k=3", headers=read)
    assert mine.status_code == 200 and len(mine.json()["items"]) == 3
    assert server.info()["new_items"] == 1
    counts = dict(
        (r["category"], r["items"])
        for r in client.get("/v1/categories", headers=read).json()["categories"]
    )
    trained = int(np.sum(engine.catalogue.category[: engine.n_trained] == category))
    assert counts[category] == trained + 1


def test_every_server_over_the_store_follows_it(settings, store):
    """Two model servers (as two replicas) over one store: a change reaches both."""
    replicas = [ModelServer(settings, store.erased_hashes) for _ in range(2)]
    item = str(replicas[0].engine.item_ids[0])
    store.items.upsert([{"item_id": item, "in_stock": False, "price": 12.5}])
    for replica in replicas:
        assert replica.sync_catalogue() == {"updated": 1, "added": 0}
        position = replica.engine.item_index(item)
        assert not replica.engine.catalogue.in_stock[position]
        assert replica.engine.catalogue.price[position] == 12.5
        assert replica.sync_catalogue() is None  # nothing new: one index read, no rows


def test_a_fresh_server_starts_from_the_stored_catalogue(settings, store):
    store.items.upsert([{"item_id": "stored-new", "category": "x", "price": 1.0},
                        {"item_id": "i0001", "active": False}])  # fmt: skip
    server = ModelServer(settings, store.erased_hashes)
    assert server.engine.item_index("stored-new") >= server.engine.n_trained
    assert not server.engine.catalogue.active[server.engine.item_index("i0001")]
    assert server.info()["catalogue_seq"] == 1


def test_catalogue_checks_can_be_spaced_out(settings, store):
    server = ModelServer(settings.model_copy(update={"catalogue_check_seconds": 3600}),
                         store.erased_hashes)  # fmt: skip
    server.sync_catalogue()  # the first check of the interval
    store.items.upsert([{"item_id": "i0002", "in_stock": False}])
    assert server.sync_catalogue() is None  # within the interval: not asked
    assert server.engine.catalogue.in_stock[server.engine.item_index("i0002")]


def test_the_feed_numbers_changes_in_commit_order(store, tmp_path):
    feed = CatalogueFeed(store.engine)
    assert feed.last_seq() == 0 and feed.changes().rows == []
    store.items.upsert([{"item_id": "a", "price": 1.0}, {"item_id": "b"}])
    store.items.deactivate("a")
    assert feed.last_seq() == 2
    changes = feed.changes(1)
    assert changes.seq == 2 and [(r["item_id"], r["active"]) for r in changes.rows] == [
        ("a", False)
    ]
    path = tmp_path / "items.csv"
    path.write_text("item_id,category,price\nc,tea,2.5\nb,tea,3.0\n")
    import_items(store, path, progress=False)
    assert {r["item_id"] for r in feed.changes(2).rows} == {"b", "c"}
    assert {r["item_id"] for r in feed.changes(None).rows} == {"a", "b", "c"}
    # writers running at once still get distinct, growing numbers
    threads = [threading.Thread(target=store.items.upsert, args=([{"item_id": f"t{n}"}],))
               for n in range(4)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = sorted(store.items.get(f"t{n}")["change_seq"] for n in range(4))
    assert seqs == list(range(feed.last_seq() - 3, feed.last_seq() + 1))
