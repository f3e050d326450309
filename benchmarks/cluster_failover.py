"""Failover and autoscaling of the service on a local two-node Ray cluster.

The cluster is ``deploy/local_cluster.sh`` (a head and a second node on this machine, the model
replicas preferring the second node, the ingress the head). Under a steady load from the load
tool (``loadgen.LoadGenerator``, measured in consecutive short windows) and a stream of
``POST /v1/events`` with client event ids, the second node is lost in one of two ways:

- ``ray-stop``: what ``ray stop`` does, for that node only (SIGTERM to its processes, SIGKILL
  after a grace period); the raylet tells the head it is leaving;
- ``kill-9``: ``kill -9`` of its raylet; the head finds out from missed health checks.

Reported per mode: errors after the kill, the seconds until p99 is back within 1.5x of the p99
before it (the first of three consecutive windows within it and without errors), when the model
replica was running on the head again, and acknowledged events missing from the store (must be
0). Then, on a fresh cluster, a load step against an autoscaled model deployment: replicas over
time, up and back down. Prints one JSON document.

    python benchmarks/cluster_failover.py [--model-uri BUNDLE_DIR] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the modules next to this script
    sys.path.insert(0, str(HERE))

from loadgen import LoadGenerator  # noqa: E402

ROOT = HERE.parent
SCRIPT = ROOT / "deploy" / "local_cluster.sh"
# A quick autoscaling config for a local run (the settings' defaults are 30 s up, 600 s down).
QUICK_AUTOSCALING = {
    "model_min_replicas": 1,
    "model_max_replicas": 2,
    "model_target_ongoing_requests": 2,
    "model_upscale_delay_s": 1,
    "model_downscale_delay_s": 3,
    "model_look_back_s": 2,
}
RECOVERY_FACTOR = 1.5
RECOVERY_RUN = 3  # consecutive windows within the bound


class LocalCluster:
    """``deploy/local_cluster.sh`` on a directory of its own, and a Ray driver attached to it
    (``connect``) for the state of nodes and replicas."""

    def __init__(self, directory: Path, env: dict[str, str] | None = None) -> None:
        self.directory = Path(directory)
        self.env = os.environ | {"RECSYS_CLUSTER_DIR": str(self.directory)} | (env or {})
        self.base_url: str | None = None
        self.labels: dict[str, str] = {}  # node id -> its recsys-node label
        self._connected = False

    def run(self, *args: str, timeout: float = 300) -> str:
        """One script command; its output, or an error carrying the output's tail."""
        done = subprocess.run(
            [str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(
                f"local_cluster.sh {' '.join(args)} exited {done.returncode}:\n{tail}"
            )
        return done.stdout

    def up(self) -> None:
        self.run("up")

    def deploy(self, args: dict, timeout: float = 240) -> str:
        """Deploy configs/serve.yaml with ``args`` (Settings fields); the service's URL once
        its /readyz answers 200."""
        pairs = [f"{key}={json.dumps(value)}" for key, value in args.items()]
        self.run("deploy", *pairs)
        port = (self.directory / "http_port").read_text().strip()
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"{self.base_url}/readyz not 200 after {timeout} s: {self.status()}")

    def connect(self) -> None:
        """Attach this process to the cluster as a Ray driver (after any fork: the load
        generator's client processes must be started first)."""
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # as the script starts the nodes
        address = (self.directory / "address").read_text().strip()
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        self._connected = True
        self.labels = {
            n["NodeID"]: n.get("Labels", {}).get("recsys-node", "?") for n in ray.nodes()
        }

    def wait_running(self, app: str = "recsys", timeout: float = 120) -> None:
        """Until Serve reports every deployment of ``app`` running."""
        from ray import serve

        deadline = time.monotonic() + timeout
        while (status := serve.status().applications[app].status) != "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"application {app} is {status} after {timeout} s")
            time.sleep(0.5)

    def nodes_alive(self) -> dict[str, bool]:
        """recsys-node label -> alive."""
        import ray

        return {self.labels.get(n["NodeID"], "?"): n["Alive"] for n in ray.nodes()}

    def replicas(self) -> dict[str, list[str]]:
        """Deployment -> the recsys-node label of the node of each live replica (Ray's state
        API: the actors' node ids)."""
        from ray.util.state import list_actors

        placed: dict[str, list[str]] = {}
        for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000, timeout=10):
            if actor.class_name.startswith("ServeReplica:"):
                deployment = actor.class_name.rsplit(":", 1)[1]
                placed.setdefault(deployment, []).append(self.labels.get(actor.node_id, "?"))
        return {name: sorted(nodes) for name, nodes in placed.items()}

    def running(self, deployment: str, app: str = "recsys") -> int:
        """Replicas of ``deployment`` Serve reports RUNNING."""
        from ray import serve

        info = serve.status().applications[app].deployments[deployment]
        return int(info.replica_states.get("RUNNING", 0))

    def status(self) -> str:
        try:
            return self.run("status", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return str(exc)

    def stop_worker(self) -> None:
        self.run("stop-worker", timeout=60)

    def kill_worker(self) -> None:
        self.run("kill-worker", timeout=60)

    def down(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False
        self.run("down", timeout=120)


@dataclass
class Window:
    """One window of the steady load: when, how many answers, errors, p99."""

    start: float
    end: float
    requests: int
    errors: int
    p99_ms: float | None
    error_samples: list[str] = field(default_factory=list)


class SteadyLoad:
    """The load tool's ``recommendations`` phase run back to back in short windows on a thread,
    so latency and errors can be read over time."""

    def __init__(self, generator: LoadGenerator, concurrency: int, window_s: float = 1.0):
        self.generator, self.concurrency, self.window_s = generator, concurrency, window_s
        self.windows: list[Window] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            phase = self.generator.phase("recommendations", self.concurrency, self.window_s)
            summary = phase.summary()
            self.windows.append(
                Window(
                    start,
                    time.monotonic(),
                    summary["requests"],
                    summary["errors"],
                    summary["p99_ms"],
                    summary.get("error_samples", []),
                )  # fmt: skip
            )

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


class EventStream:
    """``POST /v1/events`` in a loop with client event ids; remembers the acknowledged ones."""

    def __init__(self, base_url: str, key: str, users: list[str], items: list[str], tag: str):
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.users, self.items, self.tag = users, items, tag
        self.acknowledged: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            ids = [f"{self.tag}-{n}-{i}" for i in range(5)]
            n += 1
            events = [
                {"event_id": event_id, "event_type": "view",
                 "user_id": self.users[(n + i) % len(self.users)],
                 "item_id": self.items[(n * 7 + i) % len(self.items)]}
                for i, event_id in enumerate(ids)
            ]  # fmt: skip
            try:
                response = self.client.post("/v1/events", json={"events": events})
            except httpx.HTTPError:
                self.failed += 1
                continue
            if response.status_code == 200:
                self.acknowledged += ids
            else:
                self.failed += 1
            time.sleep(0.05)

    def __enter__(self) -> EventStream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.client.close()


def missing_events(database_url: str, event_ids: list[str]) -> list[str]:
    """The ids of ``event_ids`` that are not in the store's events table."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = {row[0] for row in conn.execute(sa.text("SELECT event_id FROM events"))}
    finally:
        engine.dispose()
    return [event_id for event_id in event_ids if event_id not in stored]


def baseline_p99(windows: list[Window]) -> float | None:
    """The p99 before the kill: the median of the windows' own p99s (recovery compares one
    window's p99 with it, so it is measured the same way)."""
    values = sorted(w.p99_ms for w in windows if w.p99_ms is not None)
    return values[len(values) // 2] if values else None


def recovery(windows: list[Window], killed_at: float, baseline_ms: float) -> float | None:
    """Seconds from the kill to the end of the first window that starts a run of
    ``RECOVERY_RUN`` windows with p99 within ``RECOVERY_FACTOR`` x ``baseline_ms`` and no
    errors; None if that never happened."""
    after = [w for w in windows if w.end > killed_at]

    def good(w: Window) -> bool:
        return not w.errors and w.p99_ms is not None and w.p99_ms <= RECOVERY_FACTOR * baseline_ms

    for i in range(len(after) - RECOVERY_RUN + 1):
        if all(good(w) for w in after[i : i + RECOVERY_RUN]):
            return round(after[i].end - killed_at, 2)
    return None


def polled(read, default):
    """``read()``, or ``default`` while the head is too busy with the lost node to answer
    (Ray's state API and the Serve controller can time out then; the next poll asks again)."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - any failure of one poll is retried by the next
        print(f"poll failed, retrying: {exc!r}"[:200], file=sys.stderr)
        return default


def failover(cluster: LocalCluster, generator: LoadGenerator, mode: str, *, key: str,
             users: list[str], items: list[str], database_url: str, concurrency: int = 4,
             before_s: float = 6.0, most_s: float = 90.0) -> dict:  # fmt: skip
    """Lose the worker node (``mode``: ray-stop or kill-9) under load; the figures."""
    kill = {"ray-stop": cluster.stop_worker, "kill-9": cluster.kill_worker}[mode]
    placed_before = cluster.replicas()
    stream = EventStream(cluster.base_url, key, users, items, tag=f"failover-{mode}")
    with SteadyLoad(generator, concurrency) as load, stream as events:
        time.sleep(before_s)
        baseline = load.windows[1:]  # the first window warms connections
        killed_at = time.monotonic()
        kill()
        killed_s = round(time.monotonic() - killed_at, 2)
        replaced_s = worker_dead_s = None
        while time.monotonic() - killed_at < most_s:
            now = round(time.monotonic() - killed_at, 2)
            if worker_dead_s is None and not polled(cluster.nodes_alive, {}).get("worker", True):
                worker_dead_s = now
            if replaced_s is None and "head" in polled(cluster.replicas, {}).get("model", []):
                if polled(lambda: cluster.running("model"), 0) >= 1:
                    replaced_s = now
            baseline_ms = baseline_p99(baseline)
            if replaced_s is not None and recovery(load.windows, killed_at, baseline_ms):
                time.sleep(1.0)
                break
            time.sleep(0.5)
    after = [w for w in load.windows if w.end > killed_at]
    baseline_ms = baseline_p99(baseline)
    lost = missing_events(database_url, events.acknowledged)
    return {
        "mode": mode,
        "replicas_before": placed_before,
        "replicas_after": cluster.replicas(),
        "concurrency": concurrency,
        "baseline_p99_ms": baseline_ms,
        "baseline_requests": sum(w.requests for w in baseline),
        "baseline_errors": sum(w.errors for w in baseline),
        "kill_command_s": killed_s,
        "worker_seen_dead_s": worker_dead_s,
        "model_replica_running_on_head_s": replaced_s,
        "requests_after_kill": sum(w.requests for w in after),
        "errors_after_kill": sum(w.errors for w in after),
        "error_samples": [s for w in after for s in w.error_samples][:3],
        "worst_window_p99_ms": max((w.p99_ms or 0 for w in after), default=None),
        "p99_back_within_1_5x_s": recovery(load.windows, killed_at, baseline_ms),
        "windows_after_kill": [
            [round(w.end - killed_at, 1), w.requests, w.errors, w.p99_ms] for w in after
        ],
        "events_acknowledged": len(events.acknowledged),
        "events_refused": events.failed,
        "acknowledged_events_missing": len(lost),
    }


def autoscale(cluster: LocalCluster, generator: LoadGenerator, *, concurrency: int = 8,
              most_up_s: float = 60.0, most_down_s: float = 60.0,
              most: int = QUICK_AUTOSCALING["model_max_replicas"],
              least: int = QUICK_AUTOSCALING["model_min_replicas"]) -> dict:  # fmt: skip
    """A load step: the model deployment's RUNNING replicas over time, up to ``most`` under
    the load and back to ``least`` after it stops."""
    timeline: list[list] = []
    started = time.monotonic()

    def sample() -> int:
        count = cluster.running("model")
        if not timeline or timeline[-1][1] != count:
            timeline.append([round(time.monotonic() - started, 1), count])
        return count

    sample()
    up_s = down_s = None
    with SteadyLoad(generator, concurrency, window_s=2.0) as load:
        while time.monotonic() - started < most_up_s:
            if sample() >= most:
                up_s = round(time.monotonic() - started, 1)
                break
            time.sleep(0.5)
        placed_at_peak = cluster.replicas()
    stopped = time.monotonic()
    load_stopped_s = round(stopped - started, 1)
    while time.monotonic() - stopped < most_down_s:
        if sample() <= least:
            down_s = round(time.monotonic() - stopped, 1)
            break
        time.sleep(0.5)
    return {
        "concurrency": concurrency,
        "settings": QUICK_AUTOSCALING,
        "replicas_over_time": timeline,  # [seconds since the load started, RUNNING replicas]
        "scaled_up_to_max_s": up_s,
        "load_stopped_at_s": load_stopped_s,
        "scaled_down_to_min_after_load_s": down_s,
        "replica_nodes_at_peak": placed_at_peak,
        "requests": sum(w.requests for w in load.windows),
        "errors": sum(w.errors for w in load.windows),
    }


def small_bundle(root: Path) -> Path:
    """A small synthetic shop and the default model fitted on it (a serving bundle)."""
    from recsys.bundle import bundle_of, save_bundle
    from recsys.data.frame import pd
    from recsys.data.interactions import Interactions
    from recsys.eval import interaction_pairs
    from recsys.models.hybrid import HybridModel
    from recsys.synth import ShopConfig, generate_shop

    shop = root / "shop"
    generate_shop(ShopConfig(users=300, items=150, seed=3), shop)
    events = pd.read_parquet(shop / "events.parquet")
    items = pd.read_parquet(shop / "items.parquet")
    model = HybridModel(dim=16, epochs=3, tune=False, device="cpu", seed=0)
    model.fit(Interactions.from_frame(interaction_pairs(events)), items=items,
              users=pd.read_parquet(shop / "users.parquet"), events=events)  # fmt: skip
    return save_bundle(bundle_of(model, items, metrics={}), root / "bundle")


def bundle_ids(bundle: Path) -> tuple[list[str], list[str]]:
    import numpy as np

    users = [str(u) for u in np.load(bundle / "user_ids.npy", allow_pickle=True)]
    items = [str(i) for i in np.load(bundle / "item_ids.npy", allow_pickle=True)]
    return users, items


def service_args(root: Path, bundle: Path, **extra) -> dict:
    """The application's Settings for a local run: a local bundle, a SQLite store under
    ``root``, small CPU shares (2 cores)."""
    return {
        "model_uri": str(bundle),
        "database_url": f"sqlite:///{root / 'recsys.db'}",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "var_dir": str(root / "var"),
        "device": "cpu",
        "replica_num_cpus": 0.25,
        "model_poll_seconds": 0,
    } | extra


def admin_key(database_url: str) -> str:
    from recsys.store import Store

    store = Store.open(database_url)
    try:
        return store.keys.create("admin", "cluster failover")[0]
    finally:
        store.close()


def one_cluster(root: Path, bundle: Path, args: dict, work) -> dict:
    """Up, deploy with ``args``, run ``work(cluster, generator, key)``, down (always)."""
    root.mkdir(parents=True, exist_ok=True)
    users, items = bundle_ids(bundle)
    settings = service_args(root, bundle, **args)
    key = admin_key(settings["database_url"])
    directory = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: Ray's socket paths
    cluster = LocalCluster(directory)
    try:
        cluster.up()
        cluster.deploy(settings)
        with LoadGenerator(cluster.base_url, key, users, items, clients=1) as generator:
            cluster.connect()  # after the generator's fork
            cluster.wait_running()
            return work(cluster, generator, key, users, items, settings)
    finally:
        cluster.down()


SCENARIOS = ("ray-stop", "kill-9", "autoscale")


def scenario(name: str, args, root: Path, bundle: Path) -> dict:
    """One scenario on a cluster of its own."""
    if name == "autoscale":

        def scale(cluster, generator, *_):
            return autoscale(cluster, generator, concurrency=args.scale_concurrency)

        return one_cluster(root / name, bundle, QUICK_AUTOSCALING, scale)

    def work(cluster, generator, key, users, items, settings):
        return failover(cluster, generator, name, key=key, users=users, items=items,
                        database_url=settings["database_url"],
                        concurrency=args.concurrency)  # fmt: skip

    # one model replica, fixed: the only one is lost with the node
    return one_cluster(root / name, bundle, {"model_max_replicas": None}, work)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", help="a bundle directory (default: a small one is fitted)")
    parser.add_argument("--concurrency", type=int, default=4, help="load clients in failover")
    parser.add_argument("--scale-concurrency", type=int, default=8, help="the load step")
    parser.add_argument("--scenario", choices=SCENARIOS, help="only this one (default: all)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cluster-failover-"))
    bundle = Path(args.model_uri) if args.model_uri else small_bundle(root)
    if args.scenario:
        result = scenario(args.scenario, args, root, bundle)
    else:
        # each scenario in a process of its own: a Ray driver (and Serve's client) belongs to
        # one cluster, and the load tool forks its clients before the driver starts
        result = {"machine_cpus": os.cpu_count()}
        for name in SCENARIOS:
            out = root / f"{name}.json"  # not stdout: Ray may print there
            command = [sys.executable, __file__, "--scenario", name, "--model-uri", str(bundle),
                       "--concurrency", str(args.concurrency), "--out", str(out),
                       "--scale-concurrency", str(args.scale_concurrency)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"scenario {name} failed:\n{done.stderr[-3000:]}")
            result[name] = json.loads(out.read_text())
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
