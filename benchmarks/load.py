"""Load and latency of the online API on loopback: recommendations vs /healthz, and ingestion.

Closed-loop load with async httpx (one connection per worker, keep-alive). In one run, per
concurrency level (default 1, 8 and 32), it measures throughput and latency percentiles of

* ``GET /healthz`` -- the baseline: the same proxy and ingress, no auth, no store, no model;
* ``GET /v1/users/{id}/recommendations?k=10`` for real customer ids,

and then the ingestion rate of ``POST /v1/events`` in batches (events/s). Any non-2xx answer or
transport exception counts as an error. The bar of the service: recommendations p99 at
concurrency 8 <= 3 x the /healthz p99 of the same run, with zero errors.

Against a running service::

    python benchmarks/load.py --base-url http://127.0.0.1:8000 --key "$KEY" \\
        --events data/sample/events.parquet --json

Self-contained (starts ``recsys serve`` with a fresh admin key, waits for /readyz, stops it)::

    python benchmarks/load.py --serve --model-uri /tmp/lb/bundle \\
        --database-url sqlite:////tmp/lb/recsys.db --var-dir /tmp/lb/var --port 8765 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

EVENT_TYPES = ("view", "view", "view", "click", "add_to_cart", "purchase")
ROUTES = {
    "healthz": "GET /healthz",
    "recommendations": "GET /v1/users/{user_id}/recommendations",
    "events": "POST /v1/events",
}
_SAMPLE = re.compile(r"^recsys_request_seconds_(sum|count)\{(.*)\} (\S+)$", re.MULTILINE)


# ---------------------------------------------------------------------------- measurement
class Phase:
    """Latencies and errors of one endpoint at one concurrency level."""

    def __init__(self, name: str, concurrency: int) -> None:
        self.name, self.concurrency = name, concurrency
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.units = 0  # events for ingestion, requests otherwise
        self.elapsed = 0.0
        self.inside_ms: float | None = None  # mean time inside the API app (its histogram)

    def inside(self, before: dict, after: dict) -> None:
        """The phase's mean time inside the API app, from two /metrics snapshots."""
        key = ROUTES[self.name]
        seconds = after.get(key, (0, 0))[0] - before.get(key, (0, 0))[0]
        count = after.get(key, (0, 0))[1] - before.get(key, (0, 0))[1]
        self.inside_ms = round(seconds / count * 1000, 3) if count else None

    def record(self, started: float, response: httpx.Response | None, exc: Exception | None):
        self.latencies.append(time.perf_counter() - started)
        if exc is not None or response is None or not 200 <= response.status_code < 300:
            self.errors += 1
            if len(self.error_samples) < 5:
                what = repr(exc) if exc is not None else f"{response.status_code} {response.text}"
                self.error_samples.append(what[:300])

    def summary(self) -> dict:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        out = {
            "endpoint": self.name,
            "concurrency": self.concurrency,
            "requests": len(ordered),
            "errors": self.errors,
            "seconds": round(self.elapsed, 3),
            "rps": round(len(ordered) / self.elapsed, 1) if self.elapsed else None,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 3) if ordered else None,
            "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None,
            "inside_app_mean_ms": self.inside_ms,
        }
        if self.name == "events":
            out["events"] = self.units
            out["events_per_s"] = round(self.units / self.elapsed, 1) if self.elapsed else None
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


async def app_totals(client) -> dict[str, tuple[float, float]]:
    """(seconds, requests) spent inside the API app per route so far, from its /metrics."""
    try:
        text = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    totals: dict[str, list[float]] = {}
    for kind, labels, value in _SAMPLE.findall(text):
        route = re.search(r'route="(.*?)"', labels)
        method = re.search(r'method="(.*?)"', labels)
        if route and method:
            slot = totals.setdefault(f"{method.group(1)} {route.group(1)}", [0.0, 0.0])
            slot[0 if kind == "sum" else 1] += float(value)
    return {key: (seconds, count) for key, (seconds, count) in totals.items()}


def _progress(phase: Phase, args) -> None:
    s = phase.summary()
    print(f"  {s['endpoint']:<16} c={s['concurrency']:<3} {s['requests']:>6} req "
          f"p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms errors {s['errors']}",
          file=sys.stderr)  # fmt: skip


async def _drive(client, make_request, phase: Phase, concurrency: int, duration, requests):
    """``concurrency`` workers send requests back to back until the time or count is up."""
    deadline = time.perf_counter() + duration if duration else None
    budget = {"left": requests if requests else None}

    def more() -> bool:
        if budget["left"] is not None:
            if budget["left"] <= 0:
                return False
            budget["left"] -= 1
        return deadline is None or time.perf_counter() < deadline

    async def worker(wid: int) -> None:
        rng = random.Random(f"{phase.name}/{concurrency}/{wid}")
        while more():
            method, url, body, units = make_request(rng)
            started = time.perf_counter()
            try:
                response = await client.request(method, url, json=body)
                phase.record(started, response, None)
                if 200 <= response.status_code < 300:
                    phase.units += units
            except httpx.HTTPError as exc:
                phase.record(started, None, exc)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    phase.elapsed = time.perf_counter() - started


def _requests(args, users: list[str], items: list[str]):
    def healthz(rng):
        return "GET", "/healthz", None, 1

    def recommendations(rng):
        return "GET", f"/v1/users/{rng.choice(users)}/recommendations?k={args.k}", None, 1

    run = uuid.uuid4().hex[:8]
    counter = {"n": 0}

    def events(rng):
        batch = []
        for _ in range(args.batch):
            counter["n"] += 1
            user = (
                rng.choice(users) if args.ingest_users == "real" else f"load-{rng.randrange(5000)}"
            )
            batch.append(
                {
                    "event_id": f"load-{run}-{counter['n']}",
                    "user_id": user,
                    "item_id": rng.choice(items),
                    "event_type": rng.choice(EVENT_TYPES),
                }
            )
        return "POST", "/v1/events", {"events": batch}, len(batch)

    return {"healthz": healthz, "recommendations": recommendations, "events": events}


async def run_load(args, users: list[str], items: list[str]) -> list[dict]:
    """Warm up, then every endpoint at every concurrency level; returns one summary per phase."""
    makers = _requests(args, users, items)
    biggest = max(args.concurrency + [args.ingest_concurrency])
    limits = httpx.Limits(max_connections=biggest, max_keepalive_connections=biggest)
    headers = {"Authorization": f"Bearer {args.key}"}
    async with httpx.AsyncClient(
        base_url=args.base_url, headers=headers, limits=limits, timeout=args.timeout
    ) as client:
        for name in ("healthz", "recommendations"):  # warm-up: connections, caches, JIT paths
            await _drive(client, makers[name], Phase(name, biggest), biggest, args.warmup, None)
        plan = [(name, c, args.requests) for c in args.concurrency
                for name in ("healthz", "recommendations")]  # fmt: skip
        if args.batch > 0:
            batches = max(1, args.requests // 10) if args.requests else None
            plan.append(("events", args.ingest_concurrency, batches))
        phases = []
        for name, concurrency, requests in plan:
            phase = Phase(name, concurrency)
            before = await app_totals(client)
            await _drive(client, makers[name], phase, concurrency, args.duration, requests)
            phase.inside(before, await app_totals(client))
            phases.append(phase)
            _progress(phase, args)
    return [phase.summary() for phase in phases]


# ---------------------------------------------------------------------------- ids
def load_ids(args) -> tuple[list[str], list[str]]:
    """Customer ids to ask for (and item ids for events) from a file, events or the bundle."""
    rng = random.Random(args.seed)
    users: list[str] = []
    items: list[str] = []
    if args.users_file:
        users = [line.strip() for line in Path(args.users_file).read_text().splitlines()]
        users = [u for u in users if u]
    if args.events:
        import pandas as pd

        path = Path(args.events)
        frame = (
            pd.read_parquet(path, columns=["user_id", "item_id"])
            if path.suffix == ".parquet"
            else pd.read_csv(path, usecols=["user_id", "item_id"], dtype=str)
        )
        users = users or frame["user_id"].dropna().astype(str).unique().tolist()
        items = frame["item_id"].dropna().astype(str).unique().tolist()
    if (not users or not items) and args.model_uri and Path(args.model_uri).is_dir():
        import numpy as np

        bundle = Path(args.model_uri)
        users = users or [str(u) for u in np.load(bundle / "user_ids.npy", allow_pickle=True)]
        items = items or [str(i) for i in np.load(bundle / "item_ids.npy", allow_pickle=True)]
    if not users:
        raise SystemExit(
            "no customer ids: pass --users-file FILE (one id per line) or --events FILE "
            "(Parquet/CSV with a user_id column), or --model-uri BUNDLE_DIR"
        )
    items = items or ["i000001"]
    if len(users) > args.max_users:
        users = rng.sample(users, args.max_users)
    return users, items


# ---------------------------------------------------------------------------- the service
def _recsys_command() -> list[str]:
    script = Path(sys.executable).with_name("recsys")
    if script.exists():
        return [str(script)]
    found = shutil.which("recsys")
    if found:
        return [found]
    return [sys.executable, "-c", "from recsys_cli.main import main; main()"]


@contextmanager
def served(args):
    """``recsys serve`` as a subprocess with a fresh admin key; stopped on exit."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"port {args.port} is taken: pick a free one with --port")
    key = args.key or "rk_load_" + secrets.token_urlsafe(24)
    env = dict(os.environ)
    env.update(
        {
            "RECSYS_ADMIN_KEY": key,
            "RECSYS_HOST": "127.0.0.1",
            "RECSYS_PORT": str(args.port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    names = {"model_uri": "MODEL_URI", "database_url": "DATABASE_URL", "var_dir": "VAR_DIR",
             "tracking_uri": "MLFLOW_TRACKING_URI"}  # fmt: skip
    for flag, name in names.items():
        if getattr(args, flag):
            env[f"RECSYS_{name}"] = getattr(args, flag)
    log = tempfile.NamedTemporaryFile("w+b", prefix="recsys-serve-", suffix=".log", delete=False)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*_recsys_command(), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ray's helpers go down with it
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait_ready(proc, base, args.ready_timeout, log.name)
        print(f"service ready on {base} after {time.perf_counter() - started:.1f}s "
              f"(pid {proc.pid}, log {log.name})", file=sys.stderr)  # fmt: skip
        yield base, key, proc
    finally:
        _stop(proc)
        log.close()


def _wait_ready(proc, base: str, timeout: float, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-3000:]
            raise SystemExit(f"recsys serve exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"recsys serve not ready after {timeout:.0f}s; its log: {log_path}")


def _stop(proc) -> None:
    """SIGTERM (recsys serve shuts Ray Serve down cleanly), then the group, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            print("recsys serve ignored SIGTERM for 90s; killing its group", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # Ray helpers left in the group, if any
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(2)
    if proc.poll() is None:
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------- report
def _machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version()}
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by every process (empty without psutil)."""
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (proc.info["name"], times.user + times.system)
    return out


def _others(before: dict, after: dict, exclude: set[int], seconds: float) -> list[str]:
    """Processes outside this benchmark and the service that used CPU during the run."""
    used = []
    for pid, (name, total) in after.items():
        if pid in exclude:
            continue
        spent = total - before.get(pid, (name, 0.0))[1]
        if spent / seconds >= 0.05:
            used.append((spent, f"{name}({pid}) {spent / seconds:.0%} of a core"))
    return [text for _, text in sorted(used, reverse=True)]


def _table(phases: list[dict]) -> str:
    head = (f"{'endpoint':<16}{'conc':>5}{'requests':>10}{'req/s':>9}{'p50 ms':>9}"
            f"{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'app ms':>9}{'errors':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for p in phases:
        rate = f"{p['rps']:.0f}" if p["rps"] is not None else "-"
        lines.append(
            f"{p['endpoint']:<16}{p['concurrency']:>5}{p['requests']:>10}{rate:>9}"
            f"{p['p50_ms'] or 0:>9.2f}{p['p90_ms'] or 0:>9.2f}{p['p99_ms'] or 0:>9.2f}"
            f"{p['max_ms'] or 0:>9.2f}{p['inside_app_mean_ms'] or 0:>9.2f}{p['errors']:>8}"
        )
        if p["endpoint"] == "events" and p["events_per_s"] is not None:
            per_batch = p["events"] // max(1, p["requests"] - p["errors"])
            lines[-1] += f"   ({p['events_per_s']:.0f} events/s, {per_batch} per request)"
    lines.append("app ms: mean time inside the API app (auth, validation, store, model call) from")
    lines.append("its /metrics; the rest of the latency is Ray's HTTP proxy, loopback and client.")
    return "\n".join(lines)


def summarise(phases: list[dict], args, machine: dict) -> dict:
    def p99(endpoint: str, concurrency: int):
        for p in phases:
            if p["endpoint"] == endpoint and p["concurrency"] == concurrency:
                return p["p99_ms"]
        return None

    level = 8 if 8 in args.concurrency else args.concurrency[len(args.concurrency) // 2]
    ratios = {
        str(c): round(p99("recommendations", c) / p99("healthz", c), 2)
        for c in args.concurrency
        if p99("healthz", c) and p99("recommendations", c) is not None
    }
    errors = sum(p["errors"] for p in phases)
    ratio = ratios.get(str(level))
    events = next((p for p in phases if p["endpoint"] == "events"), None)
    return {
        "base_url": args.base_url,
        "phases": phases,
        "p99_ratio_recommendations_over_healthz": ratios,
        "bar": {
            "concurrency": level,
            "ratio": ratio,
            "limit": 3.0,
            "aim": 2.0,
            "errors": errors,
            "met": ratio is not None and ratio <= 3.0 and errors == 0,
        },
        "events_per_s": events["events_per_s"] if events else None,
        "errors": errors,
        "settings": {
            "duration_s": args.duration,
            "requests": args.requests,
            "warmup_s": args.warmup,
            "k": args.k,
            "batch": args.batch,
            "ingest_concurrency": args.ingest_concurrency,
            "users": args.n_users,
        },
        "machine": machine,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", help="API key (read + ingest, or admin); default $RECSYS_KEY")
    parser.add_argument("--concurrency", default="1,8,32", help="Levels, comma-separated.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per phase.")
    parser.add_argument("--requests", type=int, help="Requests per phase instead of --duration.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds per warm-up endpoint.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--users-file", help="Customer ids to query, one per line.")
    parser.add_argument("--events", help="Events Parquet/CSV: customer and item ids.")
    parser.add_argument("--max-users", type=int, default=2000, help="Sample this many ids.")
    parser.add_argument("--batch", type=int, default=100, help="Events per POST (0: no ingest).")
    parser.add_argument("--ingest-concurrency", type=int, default=4)
    parser.add_argument(
        "--ingest-users",
        choices=("synthetic", "real"),
        default="synthetic",
        help="Ingest events for load-N customers (default) or for the real ids.",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="Per-request timeout (s).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print one JSON object at the end.")
    serve = parser.add_argument_group("self-contained run (--serve)")
    serve.add_argument("--serve", action="store_true", help="Start `recsys serve` for the run.")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--model-uri", help="RECSYS_MODEL_URI (a bundle directory works).")
    serve.add_argument("--database-url", help="RECSYS_DATABASE_URL (use a scratch database).")
    serve.add_argument("--var-dir", help="RECSYS_VAR_DIR.")
    serve.add_argument("--tracking-uri", help="RECSYS_MLFLOW_TRACKING_URI.")
    serve.add_argument("--ready-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency: positive integers, e.g. 1,8,32")
    if args.requests:
        args.duration = None
    args.key = args.key or os.environ.get("RECSYS_KEY")
    if not args.serve and not args.key:
        parser.error("--key (or RECSYS_KEY) is required unless --serve starts the service")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    users, items = load_ids(args)
    args.n_users = len(users)

    def measure() -> dict:
        print(f"load: {len(users)} customers, levels {args.concurrency}, "
              f"{args.duration or args.requests} {'s' if args.duration else 'requests'} per phase "
              f"against {args.base_url}", file=sys.stderr)  # fmt: skip
        machine, cpu, started = _machine(), _cpu_seconds(), time.perf_counter()
        phases = asyncio.run(run_load(args, users, items))
        exclude = {os.getpid(), *(_tree(service.pid) if service else ())}
        machine["other_processes"] = _others(
            cpu, _cpu_seconds(), exclude, time.perf_counter() - started
        )
        machine["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        return summarise(phases, args, machine)

    service = None
    if args.serve:
        with served(args) as (base, key, service):
            args.base_url, args.key = base, key
            result = measure()
    else:
        result = measure()
    print(_table(result["phases"]))
    bar = result["bar"]
    print(f"\nrecommendations p99 / healthz p99 at concurrency {bar['concurrency']}: "
          f"{bar['ratio']} (bar <= {bar['limit']}, aim {bar['aim']}); errors {bar['errors']}; "
          f"{'MET' if bar['met'] else 'NOT MET'}")  # fmt: skip
    if result["events_per_s"] is not None:
        print(f"ingestion: {result['events_per_s']:.0f} events/s")
    machine = result["machine"]
    print(f"machine: {machine['cpus']} CPUs, load average {machine.get('loadavg')} before, "
          f"{machine.get('loadavg_after')} after; other processes during the run: "
          f"{', '.join(machine['other_processes']) or 'none above 5% of a core'}")  # fmt: skip
    if args.json:
        print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


def _tree(pid: int) -> set[int]:
    try:
        import psutil

        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except Exception:  # psutil missing or the process is gone
        return {pid}


if __name__ == "__main__":
    sys.exit(main())
