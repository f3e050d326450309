"""Import speed of `recsys import events` into a fresh SQLite file and a fresh PostgreSQL schema.

Generates a synthetic shop (about 2M events by default) unless --data names one, then imports
its events.parquet into each backend with the same code path as the CLI and prints one JSON
line per backend: rows, seconds, events/s (validation, write and profile recompute included).

    python benchmarks/import_speed.py                                   # ~2M events
    python benchmarks/import_speed.py --data /tmp/shop --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine

from recsys.store import Store
from recsys.store.bulk import import_events
from recsys.synth import ShopConfig, generate_shop


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="A shop directory with events.parquet.")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-postgres", action="store_true")
    return parser.parse_args()


def _sqlite(events: Path, folder: Path) -> dict:
    store = Store.open(f"sqlite:///{folder / 'import.db'}")
    try:
        return import_events(store, events, progress=False).as_dict()
    finally:
        store.close()


def _postgres(events: Path, url: str) -> dict:
    schema = f"import_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        store = Store.open(url, connect_args={"options": f"-csearch_path={schema}"})
        try:
            return import_events(store, events, progress=False).as_dict()
        finally:
            store.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main() -> None:
    """Import once into each backend and print the measurements as JSON lines."""
    args = _parse()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = args.data
        if data is None:
            data = folder / "shop"
            generate_shop(ShopConfig(users=args.users, items=args.items, seed=1), data)
        events = data / "events.parquet"
        print(json.dumps({"backend": "sqlite", **_sqlite(events, folder)}), flush=True)
        if not args.skip_postgres:
            print(json.dumps({"backend": "postgresql", **_postgres(events, args.postgres)}))


if __name__ == "__main__":
    main()
