"""`recsys worker`: the campaign worker on its own (triggers, due steps, delivery)."""

from __future__ import annotations

import json

import typer

from recsys.settings import load_settings


def worker(
    once: bool = typer.Option(False, "--once", help="Catch up once, print the counts and exit."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between passes."),
) -> None:
    """Run the campaign worker against RECSYS_DATABASE_URL with the configured model (and the
    registry versions that active campaigns name in recommendations.model)."""
    from serving.settings import Settings
    from serving.worker import run

    counts = run(load_settings(Settings), once=once, poll_s=poll)
    if counts is not None:
        typer.echo(json.dumps(counts))
