"""`recsys segments refresh` on one Ray node vs two: the membership pass split over user-id
shards run as Ray tasks, against one PostgreSQL store.

Fills a fresh PostgreSQL schema once (a generated shop imported with the bulk path, ``--segments``
rule segments of every node kind from ``benchmarks/segments.py`` plus the built-in RFM groups),
then for each configuration ``NODESxSHARDS`` (``0x1``: in process, no Ray) empties the
memberships and segment events, starts a local Ray cluster of NODES logical nodes with
``--cpus-per-node`` CPUs each (``ray start --head`` + ``ray start --address``, free ports, own temp
folders), times the real command

    recsys segments refresh --no-clusters --json --shards SHARDS --ray-address HEAD

and stops the cluster. One JSON line per configuration: customers, events, shards, nodes,
seconds (the command's wall time), the refresh's own stage times, entries/exits, the command's
peak RSS and each shard's time, node and worker peak RSS.

    .venv/bin/python benchmarks/refresh_shards.py --users 1000000 --events-per-user 3
    .venv/bin/python benchmarks/refresh_shards.py --users 20000 --configs 0x1,1x2,2x2  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events-per-user", type=float, default=3.0)
    parser.add_argument("--segments", type=int, default=20, help="rule segments (+ 11 RFM)")
    parser.add_argument("--configs", default="0x1,1x2,2x2", help="NODESxSHARDS, comma-separated")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--postgres", default=POSTGRES, help="server and database to use")
    parser.add_argument(
        "--sqlite",
        type=Path,
        help="a SQLite file instead (one machine, one writer at a time)",
    )
    parser.add_argument("--schema", default=f"refresh_shards_{os.getpid()}")
    parser.add_argument(
        "--keep", action="store_true", help="keep the store (a rerun with --schema reuses it)"
    )
    return parser.parse_args()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _cluster(nodes: int, cpus: int):
    """A local Ray cluster of ``nodes`` logical nodes; yields the head's GCS address."""
    port, dashboard, procs, temps = _free_port(), _free_port(), [], []
    try:
        for n in range(nodes):
            temps.append(tempfile.mkdtemp(prefix=f"rayshards-{n}-", dir="/tmp"))
            role = (
                ["--head", f"--port={port}", "--include-dashboard=true",
                 f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
                 f"--ray-client-server-port={_free_port()}"]
                if n == 0 else [f"--address=127.0.0.1:{port}"]
            )  # fmt: skip
            command = [
                f"{BIN}/ray", "start", "--block", f"--num-cpus={cpus}", f"--temp-dir={temps[-1]}",
                "--node-ip-address=127.0.0.1", "--object-store-memory=200000000",
                "--disable-usage-stats", f"--dashboard-agent-listen-port={_free_port()}",
                f"--metrics-export-port={_free_port()}", *role,
            ]  # fmt: skip
            with open(f"{temps[-1]}.log", "w") as log:  # read when a node fails to start
                procs.append(
                    subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # the node's processes: one group to kill
                    )
                )
            _wait_for_nodes(dashboard, n + 1, procs, f"{temps[-1]}.log")
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            with suppress(ProcessLookupError):  # a node that failed to start is gone already
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
            Path(f"{temp}.log").unlink(missing_ok=True)


def _wait_for_nodes(
    dashboard: int, count: int, procs: list, log: str, seconds: float = 120
) -> None:
    """Until the head's dashboard lists ``count`` alive nodes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("ray start exited:\n" + Path(log).read_text()[-2000:])
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{dashboard}/api/v0/nodes", timeout=5
            ) as answer:
                nodes = json.load(answer)["data"]["result"]["result"]
            if sum(n["state"] == "ALIVE" for n in nodes) == count:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise SystemExit(f"{count} Ray node(s) not alive within {seconds}s")


def _prepare(args: argparse.Namespace) -> tuple[str, dict]:
    """The store URL (created and filled unless it already holds customers)."""
    from sqlalchemy import func, select

    from recsys.store import Store, make_engine, read_session
    from recsys.store.tables import Event, UserProfile

    if args.sqlite:
        url = f"sqlite:///{args.sqlite.resolve()}"
    else:
        admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{args.schema}"')
        admin.dispose()
        url = f"{args.postgres}?options=-csearch_path%3D{args.schema}"
    store = Store.open(url)
    try:
        with read_session(store.engine) as session:
            customers = int(session.scalar(select(func.count()).select_from(UserProfile)) or 0)
        filled = {}
        if not customers:
            filled = _fill(store, args)
        with read_session(store.engine) as session:
            customers = int(session.scalar(select(func.count()).select_from(UserProfile)) or 0)
            events = int(session.scalar(select(func.count()).select_from(Event)) or 0)
    finally:
        store.close()
    return url, {"customers": customers, "events": events, **filled}


def _fill(store, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(HERE))
    from segments import definitions  # benchmarks/segments.py: every node kind

    from recsys.segments.service import SegmentService
    from recsys.store.bulk import import_events, import_items, import_users
    from recsys.synth import ShopConfig, generate_shop

    took = {}
    with tempfile.TemporaryDirectory() as tmp:
        shop = Path(tmp) / "shop"
        start = time.perf_counter()
        generate_shop(
            ShopConfig(users=args.users, items=args.items, seed=3,
                       events_per_user=args.events_per_user),
            shop,
        )  # fmt: skip
        took["generate_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        import_items(store, shop / "items.parquet", progress=False)
        import_users(store, shop / "users.parquet", progress=False)
        import_events(store, shop / "events.parquet", progress=False)
        took["import_s"] = round(time.perf_counter() - start, 1)
    items = store.items.export_frame()
    categories = sorted(items["category"].dropna().unique().tolist())[:12] or ["c0"]
    service = SegmentService(store)
    for k, node in enumerate(definitions(args.segments, categories)):
        service.create(f"scale {k}", node, segment_id=f"scale-{k}", evaluate=False)
    return took


def _reset(url: str) -> None:
    """No memberships and no segment events: every run writes the same entries."""
    from recsys.store import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DELETE FROM segment_members")
            conn.exec_driver_sql("DELETE FROM segment_events")
        else:
            conn.exec_driver_sql("TRUNCATE segment_members, segment_events")
    engine.dispose()


def _run(url: str, nodes: int, shards: int, cpus: int) -> dict:
    command = [f"{BIN}/recsys", "segments", "refresh", "--no-clusters", "--json",
               "--database-url", url]  # fmt: skip
    with _cluster(nodes, cpus) if nodes else _no_cluster() as address:
        if nodes:
            command += ["--shards", str(shards), "--ray-address", address]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
            peak = 0  # VmHWM of the command itself (ru_maxrss would count this parent's pages)
            while proc.poll() is None:
                peak = max(peak, _hwm_kib(proc.pid))
                time.sleep(0.2)
            seconds = time.perf_counter() - start
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-4000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {
        "customers": summary["customers"],
        "shards": shards,
        "nodes": nodes,
        "cpus_per_node": cpus if nodes else None,
        "seconds": round(seconds, 1),
        "stages_s": summary["seconds"],
        "changes": summary["changes"],
        "command_peak_rss_mib": round(peak / 1024),
        "per_shard": [
            {k: s[k] for k in ("shard", "customers", "seconds", "worker_peak_rss_mib")}
            | {"node": s["node"][:8]}
            for s in summary.get("shards", [])
        ],
    }


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0  # exited between the poll and the read


@contextmanager
def _no_cluster():
    yield None


def main() -> None:
    args = _parse()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    try:
        url, store = _prepare(args)
        where = str(args.sqlite) if args.sqlite else f"postgresql schema {args.schema}"
        print(json.dumps({"stage": "store", "store": where, **store}), flush=True)
        for nodes, shards in configs:
            _reset(url)
            result = _run(url, nodes, shards, args.cpus_per_node)
            print(json.dumps({"events": store["events"], **result}), flush=True)
    finally:
        if not args.keep and args.sqlite:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.sqlite}{suffix}").unlink(missing_ok=True)
        elif not args.keep:
            from recsys.store import make_engine

            admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE')
            admin.dispose()


if __name__ == "__main__":
    main()
