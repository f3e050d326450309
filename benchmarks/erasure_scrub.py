"""Erasure time for one customer across N registered model versions and their local caches.

Fits one bundle on a synthetic shop, registers it N times in a local MLflow store (SQLite +
artifacts under var/mlartifacts), downloads each version into var/models (the service's cache),
stores the shop's events, then erases one customer: the store transaction, then the scrub of
every version, every cache and the SQLite log. Prints one JSON summary.

    python benchmarks/erasure_scrub.py [--versions 5] [--users 2000] [--items 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(versions: int, users: int, items: int) -> dict:
    """Build the setup in a temporary directory and time one erasure."""
    sys.path.insert(0, str(ROOT))
    from recsys.bundle import load_bundle
    from recsys.data.frame import pd
    from recsys.privacy import DerivedDataScrubber
    from recsys.registry import Registry
    from recsys.store import Store
    from tests.utils.factories import make_bundle, make_shop

    work = Path(tempfile.mkdtemp(prefix="recsys-erasure-"))
    os.chdir(work)
    shop = make_shop(work / "shop", users=users, items=items)
    bundle = make_bundle(shop, work / "bundle", dim=32, epochs=1)
    registry = Registry(f"sqlite:///{work / 'var' / 'mlflow.db'}")
    for _ in range(versions):
        with registry.run("erasure-benchmark"):
            number = registry.log_bundle(bundle).registered_model_version
        registry.download_bundle(f"models:/recsys/{number}", work / "var" / "models" / f"v{number}")
    store = Store.open(f"sqlite:///{work / 'var' / 'recsys.db'}")
    store.events.append(pd.read_parquet(shop / "events.parquet"))
    victim = str(load_bundle(bundle).user_ids[17])
    scrubber = DerivedDataScrubber(
        store, tracking_uri=registry.tracking_uri, cache_dirs=[work / "var" / "models"]
    )
    started = time.perf_counter()
    receipt = store.erase_user(victim, actor="benchmark")
    stored = time.perf_counter()
    scrubs = scrubber.erase(receipt)
    done = time.perf_counter()
    store.close()
    artifacts = [a for s in scrubs for a in s["artifacts"]]
    return {
        "users": users, "items": items, "versions": versions, "events": store_events(shop),
        "store_erasure_s": round(stored - started, 3),
        "derived_scrub_s": round(done - stored, 3),
        "total_s": round(done - started, 3),
        "bundles_rewritten": sum(a.get("rows_removed", 0) > 0 for a in artifacts),
        "pending": sum(s["status"] == "pending" for s in scrubs),
    }  # fmt: skip


def store_events(shop: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(shop / "events.parquet").num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.versions, args.users, args.items), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
