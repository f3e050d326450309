"""`recsys import events|items|users FILE`: bulk-load a CSV or Parquet file into the store."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from recsys.settings import get_settings
from recsys.store import Store
from recsys.store.bulk import import_file


class ImportKind(StrEnum):
    events = "events"
    items = "items"
    users = "users"


def import_(
    kind: ImportKind = typer.Argument(..., help="What the file holds: events, items or users."),
    path: Path = typer.Argument(..., help="CSV/TSV or Parquet file with the canonical columns."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Store to import into (default: RECSYS_DATABASE_URL)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Validate the whole file with the loaders' rules, then write it in one transaction: a file
    with a bad row imports nothing (the error names the row, line and column). Events also
    recompute the profiles of their users. Items and users are upserted by id."""
    store = Store.open(database_url or get_settings().database_url)
    try:
        result = import_file(store, kind.value, path, progress=progress)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    profiles = f"; {result.profiles:,} profiles updated" if result.profiles else ""
    typer.echo(
        f"imported {result.rows:,} {result.kind} from {result.path} into {result.database} "
        f"in {result.seconds:.1f} s ({result.rows_per_second:,.0f}/s){profiles}"
    )
