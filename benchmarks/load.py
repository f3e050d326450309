"""Load and latency of the online API on loopback: recommendations vs /healthz, and ingestion.

Closed-loop load with async httpx from one or more client processes (``--clients``; one
keep-alive connection per worker). In one run, per concurrency level (default 1, 8 and 32), it
measures throughput, latency percentiles and the server's CPU per request of

* ``GET /healthz`` -- the baseline: the same proxy and ingress, no auth, no store, no model;
* ``GET /v1/users/{id}/recommendations?k=10`` for real customer ids,

and then the ingestion rate of ``POST /v1/events`` in batches (events/s). Any non-2xx answer or
transport exception counts as an error. The bar of the service: recommendations p99 at
concurrency 8 <= 3 x the /healthz p99 of the same run, with zero errors.

``--compare-plain`` runs the same phases against the Ray Serve service and against the same
FastAPI app and engine in one plain uvicorn process (``plain_server.py``, no Ray), one after the
other, and prints, last, one JSON object with ``ray`` and ``plain`` figures per endpoint and
concurrency and ``ratio_rps_recommendations_c8``. Without ``--base-url`` it starts both servers
itself on free ports with the ``make run`` sample model (``models:/recsys@champion`` in
``var/mlflow.db``; scratch stores) and stops them::

    python benchmarks/load.py --compare-plain --duration 8 --concurrency 8

Against a running service::

    python benchmarks/load.py --base-url http://127.0.0.1:8000 --key "$KEY" \\
        --events data/sample/events.parquet --json

Self-contained (``--serve`` starts ``recsys serve``, ``--serve-plain`` the plain process)::

    python benchmarks/load.py --serve --model-uri /tmp/lb/bundle \\
        --database-url sqlite:////tmp/lb/recsys.db --var-dir /tmp/lb/var --port 8765 --json

The load generator lives in ``loadgen.py``, the servers in ``load_servers.py`` and
``plain_server.py``, the tables and summaries in ``load_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the modules next to this script
    sys.path.insert(0, str(HERE))

import load_report as report  # noqa: E402
from load_servers import SETTING_FLAGS, Service, free_port, served  # noqa: E402
from loadgen import ENDPOINTS, LoadGenerator, app_totals, load_ids  # noqa: E402

SAMPLE_EVENTS = Path("data/sample/events.parquet")  # `make sample`
SAMPLE_TRACKING = Path("var/mlflow.db")  # `make run` / `make train`


def run_load(args, users, items, base_url: str, key: str, service: Service | None) -> list[dict]:
    """Warm up, then every endpoint at every concurrency level; returns one summary per phase."""
    biggest = max(args.concurrency + [args.ingest_concurrency])
    options = {"k": args.k, "batch": args.batch, "ingest_users": args.ingest_users,
               "most_workers": biggest}  # fmt: skip
    plan = [(name, c, args.requests) for c in args.concurrency for name in ENDPOINTS]
    if args.batch > 0:
        batches = max(1, args.requests // 10) if args.requests else None
        plan.append(("events", args.ingest_concurrency, batches))
    phases = []
    with LoadGenerator(base_url, key, users, items, clients=args.clients, options=options,
                       timeout=args.timeout) as load:  # fmt: skip
        for name in ENDPOINTS:  # warm-up: connections, caches, JIT paths
            load.phase(name, biggest, duration=args.warmup or None, requests=args.warmup_requests)
        for name, concurrency, requests in plan:
            before, cpu = app_totals(base_url), service.cpu_seconds() if service else None
            phase = load.phase(name, concurrency, args.duration, requests)
            if cpu is not None:
                after = service.cpu_seconds()
                phase.server_cpu_s = after - cpu if after is not None else None
            phase.inside(before, app_totals(base_url))
            phases.append(phase.summary())
            _progress(phases[-1])
        args.client_pids = load.pids()
    return phases


def _progress(s: dict) -> None:
    print(f"  {s['endpoint']:<16} c={s['concurrency']:<3} {s['requests']:>6} req "
          f"{s['rps']} req/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms errors {s['errors']} "
          f"client core {s['client_busiest_core_share']}", file=sys.stderr)  # fmt: skip
    if (s["client_busiest_core_share"] or 0) > 0.8:
        print("  warning: a client process used most of a core; raise --clients", file=sys.stderr)


def measure(args, users, items, base_url: str, key: str, service: Service | None) -> dict:
    print(f"load: {len(users)} customers, levels {args.concurrency}, "
          f"{args.duration or args.requests} {'s' if args.duration else 'requests'} per phase, "
          f"{args.clients} client process(es) against {base_url}", file=sys.stderr)  # fmt: skip
    host, cpu, started = report.machine(), report.cpu_seconds(), time.perf_counter()
    phases = run_load(args, users, items, base_url, key, service)
    exclude = {os.getpid(), *args.client_pids, *(_tree(service.proc.pid) if service else ())}
    host["other_processes"] = report.others(
        cpu, report.cpu_seconds(), exclude, time.perf_counter() - started
    )
    host["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    settings = {
        "duration_s": args.duration, "requests": args.requests, "warmup_s": args.warmup,
        "k": args.k, "batch": args.batch, "ingest_concurrency": args.ingest_concurrency,
        "users": len(users), "clients": args.clients,
    }  # fmt: skip
    return report.summarise(phases, args.concurrency, base_url, settings, host)


def _tree(pid: int) -> set[int]:
    try:
        import psutil

        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except Exception:  # psutil missing or the process is gone
        return {pid}


def _print_run(result: dict, title: str) -> None:
    print(report.table(result["phases"], title))
    bar = result["bar"]
    print(f"\nrecommendations p99 / healthz p99 at concurrency {bar['concurrency']}: "
          f"{bar['ratio']} (bar <= {bar['limit']}, aim {bar['aim']}); errors {bar['errors']}; "
          f"{'MET' if bar['met'] else 'NOT MET'}")  # fmt: skip
    if result["events_per_s"] is not None:
        print(f"ingestion: {result['events_per_s']:.0f} events/s")
    host = result["machine"]
    print(f"machine: {host['cpus']} CPUs, load average {host.get('loadavg')} before, "
          f"{host.get('loadavg_after')} after; other processes during the run: "
          f"{', '.join(host['other_processes']) or 'none above 5% of a core'}\n")  # fmt: skip


def _self_served_settings(args, stack: ExitStack, kind: str) -> dict:
    """Flags for a server we start: the given ones, else the sample model and a scratch store."""
    settings = {flag: getattr(args, flag) for flag in SETTING_FLAGS}
    if (
        not settings["model_uri"]
        and not settings["tracking_uri"]
        and not any(
            os.environ.get(f"RECSYS_{name}") for name in ("MODEL_URI", "MLFLOW_TRACKING_URI")
        )
    ):
        if not SAMPLE_TRACKING.exists():
            raise SystemExit(
                f"no trained sample model ({SAMPLE_TRACKING} is absent): run `make run` (or "
                "`make sample` and `recsys train --config configs/train.yaml`) once, from the "
                "repository root, or pass --model-uri BUNDLE_DIR"
            )
    if not settings["database_url"] and not os.environ.get("RECSYS_DATABASE_URL"):
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"load-{kind}-")))
        settings["database_url"] = f"sqlite:///{scratch / 'recsys.db'}"
        settings["var_dir"] = settings["var_dir"] or str(scratch / "var")
    return settings


def main(argv=None) -> int:
    args = parse_args(argv)
    users, items = load_ids(args)
    if args.compare_plain:
        kinds = ["ray", "plain"]
    else:
        kinds = ["plain"] if args.serve_plain else ["ray"]
    results, ready = {}, {}
    for kind in kinds:  # one after the other: each server is measured alone
        with ExitStack() as stack:
            start = kind == "plain" or args.serve or (args.compare_plain and not args.base_url)
            if start:
                port = args.port if args.port and len(kinds) == 1 else free_port()
                settings = _self_served_settings(args, stack, kind)
                key = args.key if kind == "ray" and args.serve else None
                service = stack.enter_context(served(kind, port, settings, key, args.ready_timeout))
                base_url, key, ready[kind] = service.base_url, service.key, service.ready_seconds
            else:
                service, base_url, key = None, args.base_url or "http://127.0.0.1:8000", args.key
            results[kind] = measure(args, users, items, base_url, key, service)
        _print_run(results[kind], f"{kind}: {base_url}")
    errors = sum(r["errors"] for r in results.values())
    if args.compare_plain:
        comparison = report.compare(results["ray"], results["plain"], args.concurrency, ready)
        level = comparison["bars"]["concurrency"]
        print(f"recommendations at concurrency {level}: Ray Serve / plain throughput "
              f"{comparison.get(f'ratio_rps_recommendations_c{level}')}, p99 "
              f"{comparison.get(f'ratio_p99_recommendations_c{level}')}")  # fmt: skip
        print(json.dumps(comparison))
    elif args.json:
        print(json.dumps(results[kinds[0]] | ({"ready_seconds": ready[kinds[0]]} if ready else {})))
    return 0 if errors == 0 else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="A running service (default http://127.0.0.1:8000).")
    parser.add_argument("--key", help="API key (read + ingest, or admin); default $RECSYS_KEY")
    parser.add_argument("--concurrency", default="1,8,32", help="Levels, comma-separated.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per phase.")
    parser.add_argument("--requests", type=int, help="Requests per phase instead of --duration.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds per warm-up endpoint.")
    parser.add_argument("--clients", type=int, default=2, help="Load-generator processes.")
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
    serve = parser.add_argument_group("servers started for the run")
    serve.add_argument("--serve", action="store_true", help="Start `recsys serve` for the run.")
    serve.add_argument("--serve-plain", action="store_true", help="Start the plain process.")
    serve.add_argument(
        "--compare-plain",
        action="store_true",
        help="Also measure the same app in one plain uvicorn process; print the comparison last.",
    )
    serve.add_argument("--port", type=int, help="Port of a single started server (default free).")
    serve.add_argument("--model-uri", help="RECSYS_MODEL_URI (a bundle directory works).")
    serve.add_argument("--database-url", help="RECSYS_DATABASE_URL (default: a scratch store).")
    serve.add_argument("--var-dir", help="RECSYS_VAR_DIR.")
    serve.add_argument("--tracking-uri", help="RECSYS_MLFLOW_TRACKING_URI.")
    serve.add_argument("--ready-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency: positive integers, e.g. 1,8,32")
    if args.clients < 1:
        parser.error("--clients: at least 1")
    if args.serve and args.serve_plain:
        parser.error("--serve and --serve-plain: pick one (or --compare-plain for both)")
    args.warmup_requests = None if args.warmup else 1
    if args.requests:
        args.duration = None
    args.key = args.key or os.environ.get("RECSYS_KEY")
    starts = args.serve or args.serve_plain or (args.compare_plain and not args.base_url)
    if not starts and not args.key:
        parser.error("--key (or RECSYS_KEY) is required unless the run starts the service")
    if not (args.users_file or args.events or args.model_uri) and SAMPLE_EVENTS.exists():
        args.events = str(SAMPLE_EVENTS)  # the `make sample` shop's customers
    return args


if __name__ == "__main__":
    sys.exit(main())
