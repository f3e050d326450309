"""`recsys keys ...`: create, list and revoke API keys in the service's store."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    help="Manage API keys (stored hashed; a key is shown once, at creation).", no_args_is_help=True
)

DB_HELP = "Store URL (default: RECSYS_DATABASE_URL or sqlite:///var/recsys.db)."


def _store(database_url: str | None):
    from recsys.settings import get_settings
    from recsys.store import Store

    return Store.open(database_url or get_settings().database_url)


@app.command("create")
def create(
    role: str = typer.Option(..., "--role", help="admin, marketer, ingest or read."),
    name: str = typer.Option("", "--name", help="What the key is for (shown in listings)."),
    rate: str = typer.Option(
        None, "--rate", help="Read requests allowed, e.g. 100/s or 600/min (default: the role's)."
    ),
    ingest_rate: str = typer.Option(
        None, "--ingest-rate", help="Ingestion requests allowed, e.g. 1000/s (default: 1000/s)."
    ),
    database_url: str = typer.Option(None, "--database-url", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the key and its record as JSON."),
) -> None:
    """Create a key with ROLE and print it once; only its hash is stored."""
    from recsys.errors import InvalidInputError
    from recsys.store import Role
    from recsys.store.key_rates import KeyRateStore, parse_rate

    try:
        parsed = Role.parse(role)
    except InvalidInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    rates = {}
    for option, kind, value in (("--rate", "read", rate), ("--ingest-rate", "ingest", ingest_rate)):
        try:
            rates[kind] = None if value is None else parse_rate(value, option)
        except InvalidInputError as exc:
            raise typer.BadParameter(str(exc), param_hint=option) from None
    store = _store(database_url)
    try:
        plaintext, record = store.keys.create(parsed, name, actor="cli")
        if any(rates.values()):
            KeyRateStore(store.engine).set(record.id, **rates)
    finally:
        store.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "key": plaintext,
                    "id": record.id,
                    "role": record.role.value,
                    "name": record.name,
                    "prefix": record.key_prefix,
                    "rate_per_second": rates,
                }
            )
        )
    else:
        typer.echo(plaintext)
        typer.echo(
            f"created {record.role.value} key {record.id} ({record.key_prefix}…); "
            "store it now, it is not shown again",
            err=True,
        )


@app.command("list")
def list_keys(
    database_url: str = typer.Option(None, "--database-url", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List keys (id, role, name, prefix, created, revoked) without their secrets."""
    store = _store(database_url)
    try:
        records = store.keys.list()
    finally:
        store.close()
    rows = [
        {
            "id": r.id,
            "role": r.role.value,
            "name": r.name,
            "prefix": r.key_prefix,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in records
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']:>4}  {row['role']:<8} {row['prefix']}…  {state:<7} {row['name']}")


@app.command("revoke")
def revoke(
    key_id: int = typer.Argument(..., help="Id from `recsys keys list`."),
    database_url: str = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from recsys.store import ApiKeyNotFound

    store = _store(database_url)
    try:
        record = store.keys.revoke(key_id, actor="cli")
    except ApiKeyNotFound:
        raise typer.BadParameter(f"no key with id {key_id}", param_hint="KEY_ID") from None
    finally:
        store.close()
    typer.echo(f"revoked key {record.id} ({record.key_prefix}…)")
