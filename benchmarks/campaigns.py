"""Campaign throughput: enrol N customers from a segment and deliver to the outbox with
recommendations rendered (bar >= 1,000 messages/s on the 2-core machine; goal >= 5,000).

Builds a synthetic shop and fits the default model on it (a real engine), writes N customers
(e-mail + consent; the first ``--shop-users`` of them are the shop's customers the model knows,
the rest are cold and get popular items), saves a static segment of all of them (N entries in
the ``segment_events`` outbox), and runs one worker over a segment-triggered campaign whose send
step renders 4 recommended items per message. Prints JSON: the time to enrol (consume the outbox)
and to run the steps (claim, guards, one engine call per batch, filters, render, write), and the
messages per second over the whole run.

    .venv/bin/python benchmarks/campaigns.py --customers 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from recsys.bundle import bundle_of, load_bundle, save_bundle
from recsys.campaigns.recommend import engine_recommender
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.eval import interaction_pairs
from recsys.models.hybrid import HybridModel
from recsys.recommend import RecommendationEngine
from recsys.segments.service import SegmentService
from recsys.store import Store, write_session
from recsys.store.customers import write_customers
from recsys.synth import ShopConfig, generate_shop

TEMPLATE = {
    "id": "bench",
    "subject": "Picked for you, {{ customer.user_id }}",
    "text": "{% for r in recommendations %}* {{ r.title }} ({{ r.price|money }})\n{% endfor %}"
    "Unsubscribe: {{ unsubscribe_url }}",
    "html": "<ul>{% for r in recommendations %}<li>{{ r.title }}</li>{% endfor %}</ul>",
}


def build_engine(folder: Path, users: int, items: int):
    """A real engine fitted on a synthetic shop, its catalogue and the users it knows."""
    shop = folder / "shop"
    generate_shop(ShopConfig(users=users, items=items, seed=7), shop)
    events = pd.read_parquet(shop / "events.parquet")
    catalogue = pd.read_parquet(shop / "items.parquet")
    model = HybridModel(dim=32, epochs=3, tune=False, device="cpu", seed=0)
    model.fit(Interactions.from_frame(interaction_pairs(events)), items=catalogue,
              users=pd.read_parquet(shop / "users.parquet"))  # fmt: skip
    path = save_bundle(bundle_of(model, catalogue, metrics={}), folder / "bundle")
    known = sorted(events["user_id"].astype(str).unique())
    return RecommendationEngine(load_bundle(path), device="cpu"), catalogue, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--shop-users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--url", default=None, help="store URL (default: a temp SQLite file)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    engine, catalogue, known = build_engine(folder, args.shop_users, args.items)
    store = Store.open(args.url or f"sqlite:///{folder / 'recsys.db'}")
    store.items.upsert(catalogue.to_dict("records"))
    users = known[: args.customers] + [f"cold-{i}" for i in range(args.customers - len(known))]
    with write_session(store.engine) as s:
        rows = [{"user_id": u, "email": f"{u}@example.com", "country": None, "time_zone": None,
                 "consents": {"email": True}, "attributes": None} for u in users]  # fmt: skip
        write_customers(s, rows, ["email", "consents"])
    segments = SegmentService(store)
    segments.save_static("Bench audience", [(u, None) for u in users], segment_id="bench")
    service = CampaignService(store)
    service.put_template(TEMPLATE)
    service.create(
        {"name": "Bench", "trigger": {"type": "segment", "segment_id": "bench"}, "start": "mail",
         "steps": {"mail": {"type": "send", "channel": "email", "template": "bench",
                            "recommendations": {"k": 4, "exclude_sent_days": 0}}}},
        "bench", status="active",
    )  # fmt: skip
    settings = campaign_settings(campaign_secret="b" * 32, frequency_cap=10)
    worker = CampaignWorker(store, {"default": engine_recommender(engine)}, settings,
                            channels={}, batch_size=args.batch, lag_s=0)  # fmt: skip
    worker.reload()
    start, cpu_start = time.perf_counter(), time.process_time()
    enrol_batches = 0
    while worker.triggers.segment_events(args.batch):
        enrol_batches += 1
    enrolled = time.perf_counter()
    sent = 0
    while True:
        counts = worker.runner.run(args.batch)
        sent += counts["sent"]
        if counts["claimed"] == 0:
            break
    done, cpu_done = time.perf_counter(), time.process_time()
    messages = store.campaigns.messages("bench", limit=1)
    print(json.dumps({
        "customers": args.customers, "known_to_model": min(len(known), args.customers),
        "messages": sent, "batch": args.batch, "backend": store.engine.dialect.name,
        "enrol_s": round(enrolled - start, 2), "steps_s": round(done - enrolled, 2),
        "messages_per_s": round(sent / (done - start), 1),
        "steps_messages_per_s": round(sent / (done - enrolled), 1),
        # CPU seconds of this process: what the run costs when the 2 cores are shared
        "cpu_s": round(cpu_done - cpu_start, 2),
        "messages_per_cpu_s": round(sent / (cpu_done - cpu_start), 1),
        "items_in_first_message": len(messages[0]["items"]) if messages else 0,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
