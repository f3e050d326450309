"""Per-key rate limits under load: a key over its limit gets 429s while another key's latency
stays where it was.

Starts the real app (uvicorn, real SQLite store, a fitted bundle, limits in Redis) in a child
process, then measures key B's recommendation latency at a steady rate twice: alone, and while
key A (limited to ``--limit`` requests per second) sends ``--flood`` times that. Prints one JSON
summary: B's p50/p99 in both phases, their ratio, A's 200/429 counts.

    python benchmarks/rate_limits.py [--requests 400] [--rate 40] [--limit 20] [--flood 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _prepare(work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from recsys.store import Role, Store
    from recsys.store.key_rates import KeyRateStore
    from tests.utils.factories import make_bundle, make_shop

    shop = make_shop(work / "shop", users=300, items=100)
    bundle = make_bundle(shop, work / "bundle", dim=16, epochs=1)
    store = Store.open(f"sqlite:///{work / 'recsys.db'}")
    flooder, record = store.keys.create(Role.READ, "flooder")
    steady, _ = store.keys.create(Role.READ, "steady")
    store.close()
    return {"bundle": str(bundle), "flooder": flooder, "flooder_id": record.id,
            "steady": steady, "set_rate": KeyRateStore}  # fmt: skip


def _serve(work: Path, bundle: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, RECSYS_DATABASE_URL=f"sqlite:///{work / 'recsys.db'}",
               RECSYS_MODEL_URI=bundle, RECSYS_VAR_DIR=str(work / "var"), RECSYS_DEVICE="cpu",
               RECSYS_LOG_LEVEL="WARNING", RECSYS_PRIVACY_JOB_SECONDS="0",
               PYTHONPATH=str(ROOT))  # fmt: skip
    code = (
        "import uvicorn\n"
        "from recsys.store import Store\n"
        "from serving.app import create_app\n"
        "from serving.model_client import LocalModelClient\n"
        "from serving.model_server import ModelServer\n"
        "from serving.settings import Settings\n"
        "s = Settings()\n"
        "store = Store.open(s.database_url)\n"
        "app = create_app(s, store, LocalModelClient(ModelServer(s, store.erased_hashes)))\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning',"
        " access_log=False)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=work)


async def _paced(client, url: str, key: str, rate: float, n: int, out: list) -> None:
    """``n`` requests at a fixed ``rate`` (open loop: a slow answer does not delay the next)."""
    headers = {"Authorization": f"Bearer {key}"}

    async def one():
        started = time.perf_counter()
        response = await client.get(url, headers=headers)
        out.append((response.status_code, time.perf_counter() - started))

    tasks, start = [], time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


def _summary(rows: list) -> dict:
    latencies = np.array([t for code, t in rows if code == 200]) * 1000
    return {
        "requests": len(rows),
        "ok": int((np.array([c for c, _ in rows]) == 200).sum()),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
    }


async def _measure(base: str, setup: dict, args) -> dict:
    import httpx

    url = f"{base}/v1/users/u0001/recommendations?k=10"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for _ in range(50):  # warm up (model, key caches, Redis script)
            await client.get(url, headers={"Authorization": f"Bearer {setup['steady']}"})
        alone: list = []
        await _paced(client, url, setup["steady"], args.rate, args.requests, alone)
        loaded: list = []
        flood: list = []
        duration = args.requests / args.rate
        await asyncio.gather(
            _paced(client, url, setup["steady"], args.rate, args.requests, loaded),
            _paced(client, url, setup["flooder"], args.limit * args.flood,
                   int(duration * args.limit * args.flood), flood),
        )  # fmt: skip
    codes = [c for c, _ in flood]
    b0, b1 = _summary(alone), _summary(loaded)
    return {
        "steady_alone": b0,
        "steady_while_flooded": b1,
        "p99_ratio": round(b1["p99_ms"] / b0["p99_ms"], 3),
        "flooder": {"limit_per_s": args.limit, "sent_per_s": args.limit * args.flood,
                    "ok": codes.count(200), "refused_429": codes.count(429),
                    "other": len(codes) - codes.count(200) - codes.count(429)},
    }  # fmt: skip


def run(args) -> dict:
    """Prepare, serve, measure; returns the summary."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="recsys-rl-") as tmp:
        work = Path(tmp)
        setup = _prepare(work)
        from recsys.store import Store

        store = Store.open(f"sqlite:///{work / 'recsys.db'}")
        setup["set_rate"](store.engine).set(setup["flooder_id"], read=float(args.limit))
        store.close()
        server = _serve(work, setup["bundle"], args.port)
        base = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            return asyncio.run(_measure(base, setup, args))
        finally:
            server.terminate()
            server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="steady key's requests/phase")
    parser.add_argument("--rate", type=float, default=40.0, help="steady key's requests/s")
    parser.add_argument("--limit", type=float, default=20.0, help="flooding key's limit, per s")
    parser.add_argument("--flood", type=float, default=10.0, help="flood = limit x this")
    parser.add_argument("--port", type=int, default=8765)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
