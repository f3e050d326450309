"""`recsys segments refresh|sweep`: the segment batch job and the clock sweep loop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
import yaml

from recsys.errors import InvalidInputError, NotFoundError, UnavailableError
from recsys.segments.clusters import resolve_bundle
from recsys.segments.definitions import dump, parse_definition
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh as refresh_segments
from recsys.segments.service import SegmentService
from recsys.settings import get_settings
from recsys.store import Store

app = typer.Typer(help="Customer segments: batch refresh and the time sweep.", no_args_is_help=True)

URL_HELP = "Store URL (default: RECSYS_DATABASE_URL or the embedded SQLite file)."


@app.command("refresh")
def refresh(
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    model_uri: str = typer.Option(
        "models:/recsys@champion",
        "--model-uri",
        help="Model whose user embeddings are clustered (models:/... or a bundle directory).",
    ),
    k: int = typer.Option(None, "--k", min=1, help="Clusters (default: chosen by silhouette)."),
    no_clusters: bool = typer.Option(False, "--no-clusters", help="Skip the clusters."),
    shards: int = typer.Option(
        1,
        "--shards",
        min=1,
        help="Evaluate memberships as this many Ray tasks over user-id ranges (1: in process).",
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster for --shards (default: RAY_ADDRESS, set inside a Ray job; else a "
        "local Ray started for the run).",
    ),
) -> None:
    """Recompute RFM quintile edges and scores, the embedding clusters of the served model,
    install the built-in RFM groups and re-evaluate every segment for every customer, writing
    the entry/exit events the real-time path missed. With --shards N the membership pass runs
    as N Ray tasks, each over one user-id range of the same store (PostgreSQL for a cluster of
    several machines)."""
    settings = get_settings()
    url = database_url or settings.database_url
    runner = None
    if ray_address and shards == 1:
        raise InvalidInputError("--ray-address: only used with --shards N (N > 1)")
    if shards > 1:
        from serving.segment_shards import ray_runner  # Ray only when asked for

        runner = ray_runner(url, address=ray_address)
    bundle, version = None, ""
    if not no_clusters:
        try:
            bundle, version = resolve_bundle(
                model_uri, settings.mlflow_tracking_uri, settings.var_dir
            )
        except UnavailableError as exc:  # no model yet: RFM and rules still refresh
            typer.echo(f"clusters skipped: {exc}", err=True)
    store = Store.open(url)
    try:
        with typer.progressbar(length=1, label="segments", file=None) as bar:
            seen = {"total": None}

            def progress(stage: str, done: int, total: int) -> None:
                if seen["total"] is None:
                    seen["total"] = bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summary = refresh_segments(
                store, progress=progress, bundle=bundle, model_version=version, k=k,
                device=settings.device, shards=shards, runner=runner,
            )  # fmt: skip
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"refreshed {summary['customers']:,} customers ({summary['rfm_scored']:,} with RFM "
            f"scores): {summary['changes']:,} entries/exits in {summary['seconds']['total']}s"
        )
        if summary["clusters"]:
            made = summary["clusters"]
            typer.echo(f"clusters: k={made['k']} over {made['users']:,} users")
        for shard in summary.get("shards", []):
            typer.echo(
                f"shard {shard['shard']}: {shard['customers']:,} customers, "
                f"{shard['changes']:,} entries/exits in {shard['seconds']}s"
                + (f" on node {shard['node'][:12]}" if "node" in shard else "")
            )


@app.command("load")
def load(
    directory: Path = typer.Argument(..., help="Directory of segment YAML files."),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """Create (or update, when the definition changed) the segments of every *.yaml file in
    DIRECTORY: ``id, name, description, definition``, or ``builtin: rfm_groups`` for the 11 RFM
    group segments."""
    files = sorted(directory.glob("*.yaml"))
    if not directory.is_dir() or not files:
        raise InvalidInputError(f"directory: {directory} holds no segment *.yaml files")
    store = Store.open(database_url or get_settings().database_url)
    service = SegmentService(store)
    try:
        for file in files:
            typer.echo(f"{file.name}: {load_segment_file(service, file)}")
    finally:
        store.close()


def load_segment_file(service: SegmentService, file: Path) -> str:
    """Apply one segment YAML file; says what happened."""
    spec = yaml.safe_load(file.read_text()) or {}
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{file}: expected a mapping of id, name, definition")
    if spec.get("builtin") == "rfm_groups":
        made = service.install_rfm_groups()
        return f"{len(made)} RFM group segment(s) created"
    unknown = set(spec) - {"id", "name", "description", "definition"}
    missing = {"id", "name", "definition"} - set(spec)
    if unknown or missing:
        raise InvalidInputError(
            f"{file}: {'unknown keys ' + str(sorted(unknown)) if unknown else ''}"
            f"{'missing keys ' + str(sorted(missing)) if missing else ''}"
        )
    node = parse_definition(spec["definition"], root=f"{file.name}:definition")
    try:
        current = service.store.segments.get(spec["id"])
    except NotFoundError:
        service.create(
            spec["name"], node, segment_id=spec["id"],
            description=spec.get("description", ""), actor="config",
        )  # fmt: skip
        return f"created {spec['id']}"
    if current["definition"] == dump(node) and current["name"] == spec["name"]:
        return f"unchanged {spec['id']}"
    service.update(spec["id"], {"name": spec["name"], "definition": dump(node)})
    return f"updated {spec['id']}"


@app.command("sweep")
def sweep(
    interval: float = typer.Option(
        60.0, "--interval", min=1.0, help="Seconds between sweeps of time-dependent segments."
    ),
    once: bool = typer.Option(False, "--once", help="Sweep once and exit."),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """Re-evaluate the segments the clock alone changes ("no purchase in 30 days"), after
    evaluating customers whose events were committed but not evaluated (a crash)."""
    store = Store.open(database_url or get_settings().database_url)
    engine = SegmentEngine(store)
    try:
        while True:
            if engine.sweep_due(interval) or once:
                changes = engine.sweep()
                typer.echo(f"sweep: {changes} entries/exits", err=True)
            if once:
                return
            time.sleep(min(interval, 5.0))
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
