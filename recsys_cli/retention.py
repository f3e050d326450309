"""`recsys retention run`: delete expired rows and retry pending scrubs of erased customers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from recsys.privacy import DerivedDataScrubber, privacy_settings, run_privacy_job
from recsys.settings import get_settings
from recsys.store import Store

app = typer.Typer(help="Data retention and pending erasure scrubs.", no_args_is_help=True)


def _registry_uri(uri: str) -> str | None:
    """The MLflow URI to scrub: a local SQLite registry only when its file exists."""
    if uri.startswith("sqlite:///"):
        return uri if Path(uri.removeprefix("sqlite:///")).exists() else None
    return uri


@app.command("run")
def run(
    database_url: str = typer.Option(None, "--database-url", help="Store URL (default: "
                                     "RECSYS_DATABASE_URL or the embedded SQLite file)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:  # fmt: skip
    """Delete events, campaign messages and audit entries past their retention
    (RECSYS_RETENTION_EVENTS_DAYS / _MESSAGES_DAYS / _AUDIT_DAYS; 0 keeps a kind forever), then
    retry every due pending scrub of erased customers' derived data (registry versions, bundle
    caches). The service runs the same pass every RECSYS_PRIVACY_JOB_SECONDS."""
    settings = get_settings()
    store = Store.open(database_url or settings.database_url)
    try:
        scrubber = DerivedDataScrubber(
            store,
            tracking_uri=_registry_uri(settings.mlflow_tracking_uri),
            cache_dirs=[Path(settings.var_dir) / "models"],
        )
        report = run_privacy_job(scrubber, privacy_settings())
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report))
        return
    for kind in ("events", "messages", "audit"):
        part = report["retention"][kind]
        if part["cutoff"] is None:
            typer.echo(f"{kind:<9} kept forever")
        else:
            deleted = ", ".join(f"{n} {t}" for t, n in part["deleted"].items()) or "nothing"
            typer.echo(f"{kind:<9} before {part['cutoff']}: deleted {deleted}")
    scrubs = report["scrubs"]
    typer.echo(f"scrubs    {scrubs['done']} done, {scrubs['pending']} still pending")
