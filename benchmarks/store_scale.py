"""Store-scale check: a shop of 1M customers and 20M events in the store, then, each in its own
process so that its peak memory is its own:

* ``read``: :func:`training.store_source.load_store_dataset` (what ``recsys train --from-store``
  reads), with its wall time, peak RSS and the size of the frame it returns;
* ``refresh``: :func:`recsys.segments.refresh.refresh` (``recsys segments refresh``) with
  ``--segments`` rule segments of every node kind (the definitions of ``benchmarks/segments.py``)
  plus the built-in RFM groups, with its wall time and peak RSS.

The store is filled once with ``recsys import users`` and ``recsys import events`` (their rates are
printed too). Prints one JSON line per stage.

    .venv/bin/python benchmarks/store_scale.py                        # 1M users, 20M events
    .venv/bin/python benchmarks/store_scale.py --users 20000 --events-per-user 10   # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=float, default=20.0)
    parser.add_argument("--segments", type=int, default=20, help="rule segments to refresh")
    parser.add_argument("--database", help="store URL (default: SQLite in a temporary folder)")
    parser.add_argument("--stage", choices=["read", "refresh"], help=argparse.SUPPRESS)
    return parser.parse_args()


def _peak_rss_mib() -> float:
    """This process's own peak RSS: ``VmHWM`` where /proc has it. ``ru_maxrss`` is kept across
    ``execve``, so a stage started by this (multi-GB, after generating the shop) script would
    report the parent's peak as its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _stage_read(url: str) -> dict:
    from recsys.store import Store
    from training.store_source import load_store_dataset

    store = Store.open(url)
    start = time.perf_counter()
    try:
        data = load_store_dataset(store)
    finally:
        store.close()
    return {
        "events": len(data.events),
        "seconds": round(time.perf_counter() - start, 1),
        "frame_mib": round(data.events.memory_usage(deep=True).sum() / 2**20, 1),
    }


def _stage_refresh(url: str, segments: int) -> dict:
    sys.path.insert(0, str(HERE))
    from segments import definitions  # benchmarks/segments.py: every node kind

    from recsys.segments.refresh import refresh
    from recsys.segments.service import SegmentService
    from recsys.store import Store

    store = Store.open(url)
    try:
        items = store.items.export_frame()
        categories = sorted(items["category"].dropna().unique().tolist())[:12] or ["c0"]
        service = SegmentService(store)
        for k, node in enumerate(definitions(segments, categories)):
            # the refresh below evaluates them all at once (create would, one by one)
            service.create(f"scale {k}", node, segment_id=f"scale-{k}", evaluate=False)
        start = time.perf_counter()
        summary = refresh(store, engine=service.engine)
    finally:
        store.close()
    return {
        "rule_segments": segments,
        "seconds": round(time.perf_counter() - start, 1),
        "summary": {k: v for k, v in summary.items() if isinstance(v, int | float | str)},
    }


def _run_stage(stage: str, url: str, segments: int) -> dict:
    """Run ``stage`` in a fresh interpreter; its own peak RSS is part of its answer."""
    command = [sys.executable, __file__, "--stage", stage, "--database", url,
               "--segments", str(segments)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fill(url: str, shop: Path) -> list[dict]:
    from recsys.store import Store
    from recsys.store.bulk import import_events, import_items, import_users

    store = Store.open(url)
    try:
        return [
            import_items(store, shop / "items.parquet", progress=True).as_dict(),
            import_users(store, shop / "users.parquet", progress=True).as_dict(),
            import_events(store, shop / "events.parquet", progress=True).as_dict(),
        ]
    finally:
        store.close()


def main() -> None:
    args = _parse()
    if args.stage:
        answer = (
            _stage_read(args.database)
            if args.stage == "read"
            else _stage_refresh(args.database, args.segments)
        )
        print(json.dumps({"stage": args.stage, **answer, "peak_rss_mib": round(_peak_rss_mib())}))
        return
    from recsys.synth import ShopConfig, generate_shop

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database or f"sqlite:///{folder / 'scale.db'}"
        start = time.perf_counter()
        config = ShopConfig(users=args.users, items=args.items, seed=3,
                            events_per_user=args.events_per_user)  # fmt: skip
        generate_shop(config, folder / "shop")
        seconds = round(time.perf_counter() - start, 1)
        stage = {"stage": "generate", "users": args.users, "items": args.items, "seconds": seconds}
        print(json.dumps(stage), flush=True)
        for result in _fill(url, folder / "shop"):
            print(json.dumps({"stage": f"import {result['kind']}", **result}), flush=True)
        for stage in ("read", "refresh"):
            print(json.dumps(_run_stage(stage, url, args.segments)), flush=True)


if __name__ == "__main__":
    main()
