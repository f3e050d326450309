"""The load generator of ``load.py``: closed-loop async httpx workers in client processes.

Each phase (one endpoint at one concurrency level) splits its workers over up to ``clients``
processes, so that the generator is not the bottleneck; every process keeps one event loop and
one keep-alive connection per worker for the whole run, and reports its CPU time per phase.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import time
import uuid
from pathlib import Path

import httpx

EVENT_TYPES = ("view", "view", "view", "click", "add_to_cart", "purchase")
ENDPOINTS = ("healthz", "recommendations")
ROUTES = {
    "healthz": "GET /healthz",
    "recommendations": "GET /v1/users/{user_id}/recommendations",
    "events": "POST /v1/events",
}
_SAMPLE = re.compile(r"^recsys_request_seconds_(sum|count)\{(.*)\} (\S+)$", re.MULTILINE)


class Phase:
    """Latencies and errors of one endpoint at one concurrency level."""

    def __init__(self, name: str, concurrency: int) -> None:
        self.name, self.concurrency = name, concurrency
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.units = 0  # events for ingestion, requests otherwise
        self.elapsed = 0.0
        self.client_cpu: list[float] = []  # CPU seconds of each client process
        self.inside_ms: float | None = None  # mean time inside the API app (its histogram)
        self.server_cpu_s: float | None = None  # CPU seconds of the server's processes

    def record(self, started: float, response: httpx.Response | None, exc: Exception | None):
        self.latencies.append(time.perf_counter() - started)
        if exc is not None or response is None or not 200 <= response.status_code < 300:
            self.errors += 1
            if len(self.error_samples) < 5:
                what = repr(exc) if exc is not None else f"{response.status_code} {response.text}"
                self.error_samples.append(what[:300])

    def merge(self, share: dict) -> None:
        """Add one client process's share of the phase."""
        self.latencies += share["latencies"]
        self.errors += share["errors"]
        self.error_samples = (self.error_samples + share["error_samples"])[:5]
        self.units += share["units"]
        self.elapsed = max(self.elapsed, share["elapsed"])
        self.client_cpu.append(share["cpu_s"])

    def inside(self, before: dict, after: dict) -> None:
        """The phase's mean time inside the API app, from two /metrics snapshots."""
        key = ROUTES[self.name]
        seconds = after.get(key, (0, 0))[0] - before.get(key, (0, 0))[0]
        count = after.get(key, (0, 0))[1] - before.get(key, (0, 0))[1]
        self.inside_ms = round(seconds / count * 1000, 3) if count else None

    def summary(self) -> dict:
        ordered = sorted(self.latencies)
        n, seconds = len(ordered), self.elapsed

        def pct(q: float) -> float | None:
            return round(ordered[min(n - 1, int(q * n))] * 1000, 3) if n else None

        out = {
            "endpoint": self.name,
            "concurrency": self.concurrency,
            "requests": n,
            "errors": self.errors,
            "seconds": round(seconds, 3),
            "rps": round(n / seconds, 1) if seconds else None,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 3) if n else None,
            "mean_ms": round(sum(ordered) / n * 1000, 3) if n else None,
            "inside_app_mean_ms": self.inside_ms,
            "server_cpu_ms_per_request": (
                round(self.server_cpu_s / n * 1000, 3)
                if n and self.server_cpu_s is not None
                else None
            ),
            "client_processes": len(self.client_cpu),
            "client_cpu_s": round(sum(self.client_cpu), 3),
            # near 1.0: a client process had a whole core, so it may have limited the rate
            "client_busiest_core_share": (
                round(max(self.client_cpu) / seconds, 3) if seconds and self.client_cpu else None
            ),
        }
        if self.name == "events":
            out["events"] = self.units
            out["events_per_s"] = round(self.units / seconds, 1) if seconds else None
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


def app_totals(base_url: str) -> dict[str, tuple[float, float]]:
    """(seconds, requests) spent inside the API app per route so far, from its /metrics."""
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
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


def request_makers(options: dict, users: list[str], items: list[str], tag: str) -> dict:
    """endpoint -> make(rng) -> (method, url, json body, units)."""
    k, batch, real_users = options["k"], options["batch"], options["ingest_users"] == "real"
    run = f"{uuid.uuid4().hex[:8]}-{tag}"
    counter = {"n": 0}

    def healthz(rng):
        return "GET", "/healthz", None, 1

    def recommendations(rng):
        return "GET", f"/v1/users/{rng.choice(users)}/recommendations?k={k}", None, 1

    def events(rng):
        rows = []
        for _ in range(batch):
            counter["n"] += 1
            user = rng.choice(users) if real_users else f"load-{rng.randrange(5000)}"
            rows.append(
                {
                    "event_id": f"load-{run}-{counter['n']}",
                    "user_id": user,
                    "item_id": rng.choice(items),
                    "event_type": rng.choice(EVENT_TYPES),
                }
            )
        return "POST", "/v1/events", {"events": rows}, len(rows)

    return {"healthz": healthz, "recommendations": recommendations, "events": events}


def page_maker(name: str, users: list[str], items: list[str]):
    """``page:/console/customers/{user}`` -> a GET of that page, ``{user}`` and ``{item}``
    drawn per request from the run's ids (console pages; the session cookie carries the key)."""
    template = name.removeprefix("page:")

    def page(rng):
        user = rng.choice(users)
        path = template.replace("{user_prefix}", user[:-1]).replace("{user}", user)
        return "GET", path.replace("{item}", rng.choice(items)), None, 1

    return page


async def drive(client, make_request, phase: Phase, workers: int, duration, requests, seed: str):
    """``workers`` coroutines send requests back to back until the time or count is up."""
    deadline = time.perf_counter() + duration if duration else None
    budget = {"left": requests if requests else None}

    def more() -> bool:
        if budget["left"] is not None:
            if budget["left"] <= 0:
                return False
            budget["left"] -= 1
        return deadline is None or time.perf_counter() < deadline

    async def worker(wid: int) -> None:
        rng = random.Random(f"{seed}/{wid}")
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
    await asyncio.gather(*(worker(w) for w in range(workers)))
    phase.elapsed = time.perf_counter() - started


def _client_process(conn, index: int, base_url, key, timeout, options, users, items) -> None:
    """One client process: run the phases it is sent until it is sent ``None``."""
    makers = request_makers(options, users, items, tag=str(index))
    limits = httpx.Limits(max_connections=options["most_workers"], max_keepalive_connections=None)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
        timeout=timeout, cookies={"recsys_console": key},  # the console's session cookie
    )  # fmt: skip
    try:
        while (order := conn.recv()) is not None:
            name, concurrency, workers, duration, requests = order
            phase, cpu = Phase(name, concurrency), time.process_time()
            seed = f"{name}/{concurrency}/{index}"
            make = makers[name] if name in makers else page_maker(name, users, items)
            loop.run_until_complete(drive(client, make, phase, workers, duration, requests, seed))
            conn.send(
                {
                    "latencies": phase.latencies,
                    "errors": phase.errors,
                    "error_samples": phase.error_samples,
                    "units": phase.units,
                    "elapsed": phase.elapsed,
                    "cpu_s": time.process_time() - cpu,
                }
            )
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


class LoadGenerator:
    """``clients`` client processes driving one server; use as a context manager."""

    def __init__(self, base_url, key, users, items, *, clients=1, options=None, timeout=30.0):
        self.base_url = base_url
        options = {"k": 10, "batch": 100, "ingest_users": "synthetic", "most_workers": 64} | (
            options or {}
        )
        context = multiprocessing.get_context("fork")  # no re-import of the caller's script
        self._clients = []
        for index in range(max(1, clients)):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_client_process,
                args=(theirs, index, base_url, key, timeout, options, users, items),
                daemon=True,
            )
            process.start()
            self._clients.append((process, ours))

    def phase(self, name: str, concurrency: int, duration=None, requests=None) -> Phase:
        """Run one phase; workers and any request budget are split over the client processes."""
        if not duration and not requests:
            raise ValueError("a phase needs a duration or a number of requests")
        used = self._clients[: min(len(self._clients), concurrency, requests or concurrency)]
        phase = Phase(name, concurrency)
        for i, (_, conn) in enumerate(used):
            workers = concurrency // len(used) + (i < concurrency % len(used))
            share = requests // len(used) + (i < requests % len(used)) if requests else None
            conn.send((name, concurrency, workers, duration, share))
        for process, conn in used:
            if not conn.poll((duration or 0) + 600):
                raise RuntimeError(f"client process {process.pid} did not finish its phase")
            phase.merge(conn.recv())
        return phase

    def close(self) -> None:
        for process, conn in self._clients:
            if process.is_alive():
                conn.send(None)
        for process, _ in self._clients:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    def pids(self) -> set[int]:
        return {process.pid for process, _ in self._clients}

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
