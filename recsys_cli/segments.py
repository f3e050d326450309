"""`recsys segments refresh|sweep`: the segment batch job and the clock sweep loop."""

from __future__ import annotations

import json
import time

import typer

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
) -> None:
    """Recompute RFM quintile edges and scores, install the built-in RFM groups and re-evaluate
    every segment for every customer, writing the entry/exit events the real-time path missed."""
    store = Store.open(database_url or get_settings().database_url)
    try:
        with typer.progressbar(length=1, label="segments", file=None) as bar:
            seen = {"total": None}

            def progress(stage: str, done: int, total: int) -> None:
                if seen["total"] is None:
                    seen["total"] = bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summary = refresh_segments(store, progress=progress)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"refreshed {summary['customers']:,} customers ({summary['rfm_scored']:,} with RFM "
            f"scores): {summary['changes']:,} entries/exits in {summary['seconds']['total']}s"
        )


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
