"""All-or-nothing output of a synthetic shop: stream Parquet into a hidden temporary directory
beside the target and rename it into place only when everything was written."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recsys.errors import ConflictError

logger = logging.getLogger(__name__)

SUMMARY_FILE = "truth/summary.json"

SCHEMAS: dict[str, pa.Schema] = {
    "events.parquet": pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("event_type", pa.string()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("quantity", pa.int64()),
            ("value", pa.float64()),
            ("session_id", pa.string()),
            ("properties", pa.string()),
        ]
    ),
    "items.parquet": pa.schema(
        [
            ("item_id", pa.string()),
            ("title", pa.string()),
            ("category", pa.string()),
            ("price", pa.float64()),
            ("in_stock", pa.bool_()),
            ("attributes", pa.string()),
        ]
    ),
    "users.parquet": pa.schema(
        [
            ("user_id", pa.string()),
            ("email", pa.string()),
            ("country", pa.string()),
            ("consents", pa.string()),
            ("attributes", pa.string()),
        ]
    ),
    "truth/user_segments.parquet": pa.schema([("user_id", pa.string()), ("segment", pa.int32())]),
    "truth/complements.parquet": pa.schema(
        [
            ("item_id", pa.string()),
            ("complement_id", pa.string()),
            ("category", pa.string()),
            ("complement_category", pa.string()),
        ]
    ),
}


class OutputExistsError(ConflictError, FileExistsError):
    """The output directory is not empty and may not be replaced."""


def check_output_dir(out: Path, force: bool) -> None:
    """Fail before any work when ``out`` cannot take a new shop.

    An empty or absent directory is fine. A non-empty one is replaced only with ``force`` and
    only when it holds a shop written by this generator (``truth/summary.json``), so a mistyped
    path never deletes unrelated files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise OutputExistsError(
            f"--out {out} is not empty; pass --force to replace the shop in it, or pick a new "
            "directory"
        )
    if not (out / SUMMARY_FILE).is_file():
        raise OutputExistsError(
            f"--out {out} is not empty and holds no {SUMMARY_FILE}, so it is not a shop written "
            "by `recsys generate`; refusing to delete it even with --force"
        )


class ShopWriter:
    """Context manager: files go to ``.NAME.partial-PID`` and become ``NAME`` on success."""

    def __init__(self, out: str | Path, force: bool = False) -> None:
        self.out = Path(out)
        self.force = force
        self.tmp = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        self._writers: dict[str, pq.ParquetWriter] = {}

    def __enter__(self) -> ShopWriter:
        check_output_dir(self.out, self.force)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        (self.tmp / "truth").mkdir(parents=True)
        return self

    def _table(self, name: str, table: pa.Table) -> pa.Table:
        return table.select(SCHEMAS[name].names).cast(SCHEMAS[name])

    def write_table(self, name: str, table: pa.Table) -> None:
        """Write one whole table."""
        pq.write_table(self._table(name, table), self.tmp / name, compression="zstd")

    def append(self, name: str, table: pa.Table) -> None:
        """Append ``table`` as one row group of the streamed file ``name``."""
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(
                self.tmp / name, SCHEMAS[name], compression="zstd"
            )
        self._writers[name].write_table(self._table(name, table))

    def write_json(self, name: str, obj: dict) -> None:
        (self.tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def _close(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            try:
                self._close()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
                logger.info("generation failed; removed the partial output %s", self.tmp)
            return
        self._close()
        self._commit()

    def _commit(self) -> None:
        check_output_dir(self.out, self.force)  # nothing appeared there in the meantime
        old = None
        if self.out.exists():
            if any(self.out.iterdir()):
                old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                os.replace(self.out, old)
            else:
                self.out.rmdir()
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old)
        logger.info("wrote the shop to %s", self.out)
