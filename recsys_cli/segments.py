"""`recsys segments refresh|sweep`: the segment batch job and the clock sweep loop."""

from __future__ import annotations

import json
import time

import typer

from recsys.errors import UnavailableError
from recsys.segments.clusters import resolve_bundle
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh as refresh_segments
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
) -> None:
    """Recompute RFM quintile edges and scores, the embedding clusters of the served model,
    install the built-in RFM groups and re-evaluate every segment for every customer, writing
    the entry/exit events the real-time path missed."""
    settings = get_settings()
    bundle, version = None, ""
    if not no_clusters:
        try:
            bundle, version = resolve_bundle(
                model_uri, settings.mlflow_tracking_uri, settings.var_dir
            )
        except UnavailableError as exc:  # no model yet: RFM and rules still refresh
            typer.echo(f"clusters skipped: {exc}", err=True)
    store = Store.open(database_url or settings.database_url)
    try:
        with typer.progressbar(length=1, label="segments", file=None) as bar:
            seen = {"total": None}

            def progress(stage: str, done: int, total: int) -> None:
                if seen["total"] is None:
                    seen["total"] = bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summary = refresh_segments(
                store, progress=progress, bundle=bundle, model_version=version, k=k,
                device=settings.device,
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
