"""`recsys generate`: write a synthetic shop (events, items, users and the ground truth)."""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import typer

from recsys.synth.config import DEFAULT_START


@contextmanager
def _terminate_as_exit():
    """Turn SIGTERM into SystemExit so the partial output is removed as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _summary_line(summary: dict) -> str:
    counts = summary["counts"]
    return (
        f"generated {counts['users']:,} users, {counts['items']:,} items, "
        f"{counts['events']:,} events ({counts['events_view']:,} views, "
        f"{counts['events_add_to_cart']:,} carts, {counts['events_purchase']:,} purchases) "
        f"in {counts['sessions']:,} sessions, {counts['complement_pairs']:,} complement pairs "
        f"-> {summary['out']} in {summary['wall_seconds']:.1f}s"
    )


def generate(
    users: int = typer.Option(..., "--users", help="Number of customers (>= 1)."),
    items: int = typer.Option(..., "--items", help="Number of catalogue items (>= 2)."),
    out: Path = typer.Option(..., "--out", help="Output directory (absent or empty)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same arguments, same files."),
    events_per_user: float = typer.Option(
        20.0, "--events-per-user", help="Target mean events per customer."
    ),
    segments: int = typer.Option(8, "--segments", help="Planted taste segments."),
    start: str = typer.Option(
        DEFAULT_START, "--start", help="Start of the time span (ISO-8601, UTC)."
    ),
    days: float = typer.Option(90.0, "--days", help="Length of the time span in days."),
    force: bool = typer.Option(False, "--force", help="Replace a shop written earlier into --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Generate a synthetic shop with planted segments, funnels and complementary items."""
    from recsys.synth import OutputExistsError, ShopConfig, ShopConfigError, generate_shop

    try:
        config = ShopConfig(
            users=users,
            items=items,
            seed=seed,
            events_per_user=events_per_user,
            segments=segments,
            start=start,
            days=days,
        )
    except ShopConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"--{exc.field.replace('_', '-')}") from None
    try:
        with _terminate_as_exit():
            summary = generate_shop(config, out, force=force, progress=progress and not as_json)
    except OutputExistsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(_summary_line(summary))
