"""Conversions between canonical pandas frames and table rows.

pandas (through ``recsys.data.frame``, which picks pandas or cuDF's accelerator) is imported only
when a frame is actually built, so processes that never touch frames (the API-key CLI, the
ingestion path with plain records) do not pay for importing it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from recsys.data.errors import DataValidationError
from recsys.data.schemas import EVENTS

if TYPE_CHECKING:
    import pandas as pd


def is_frame(obj: Any) -> bool:
    """Whether ``obj`` is a pandas DataFrame (without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def frame_records(frame: pd.DataFrame, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a canonical events frame as dicts holding the ``fields`` present in it.

    Raises
    ------
    DataValidationError
        A required column is missing or ``timestamp`` is not a timezone-aware datetime column.
    """
    from recsys.data.frame import pd

    missing = [c for c in EVENTS.required if c not in frame.columns]
    if missing:
        raise DataValidationError("<frame>", f"missing column(s) {missing}", column=missing[0])
    if not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        raise DataValidationError(
            "<frame>",
            "timestamp must be a timezone-aware datetime column; "
            "pass the frame through recsys.data.validate.validate_frame first",
            column="timestamp",
        )
    columns = [c for c in fields if c in frame.columns]
    data = {c: frame[c].tolist() for c in columns if c != "timestamp"}
    data["timestamp"] = frame["timestamp"].dt.tz_convert("UTC").dt.to_pydatetime().tolist()
    rows = zip(*data.values(), strict=True)
    return [dict(zip(data, values, strict=True)) for values in rows]


def events_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A canonical events frame (``EVENTS`` columns and dtypes) from rows in ``EVENTS.names``
    order, as read from the ``events`` table (``None`` for missing values)."""
    from recsys.data.frame import pd

    data = dict(zip(EVENTS.names, zip(*rows, strict=True), strict=True)) if rows else {}

    def get(name: str) -> list[Any]:
        return list(data.get(name, ()))

    def text(name: str) -> pd.Series:
        return pd.Series(["" if v is None else v for v in get(name)], dtype=object).astype(str)

    props = [
        "{}" if not p else json.dumps(p, sort_keys=True, separators=(",", ":"))
        for p in get("properties")
    ]
    return pd.DataFrame(
        {
            "user_id": text("user_id"),
            "item_id": text("item_id"),
            "timestamp": pd.Series(
                pd.to_datetime(get("timestamp"), utc=True), dtype="datetime64[ns, UTC]"
            ),
            "event_type": text("event_type"),
            "quantity": pd.Series(get("quantity"), dtype="int64"),
            "value": pd.Series(
                [math.nan if v is None else v for v in get("value")], dtype="float64"
            ),
            "session_id": text("session_id"),
            "properties": pd.Series(props, dtype=object).astype(str),
        }
    )
