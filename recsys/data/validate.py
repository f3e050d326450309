"""Turn raw tables (strings from CSV, typed columns from Parquet or JSON) into canonical frames.

Every check is vectorised over the column; the first bad row is reported by its 1-based data row
number together with the column and the offending value, and nothing is returned unless the whole
table is valid (all-or-nothing).
"""

from __future__ import annotations

import json

import numpy as np

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.schemas import EVENT_TYPES, EVENTS_WITHOUT_ITEM, Column, Schema

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
# Unix seconds outside this range are almost always milliseconds or garbage.
_MIN_TS, _MAX_TS = 0.0, 7_258_118_400.0  # 1970-01-01 .. 2200-01-01
_EMPTY = {"", "nan", "none", "null", "<na>"}


def _first_bad(mask: np.ndarray) -> tuple[int, int]:
    """Position of the first True and how many more there are."""
    positions = np.flatnonzero(mask)
    return int(positions[0]), len(positions) - 1


def _fail(source: str, column: str, mask, problem) -> None:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    pos, more = _first_bad(mask)
    text = problem(pos) if callable(problem) else problem
    raise DataValidationError(source, text, row=pos + 1, column=column, more=more)


def _as_text(series: pd.Series) -> pd.Series:
    """Text view of a column; missing values become ''. Integral floats lose their '.0'."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(values)
        if finite.any() and np.all(values[finite] == np.round(values[finite])):
            return series.astype("Int64").astype(str).replace("<NA>", "")
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype(str).where(series.notna(), "")
    text = series.astype(str).where(series.notna(), "")
    return text.str.strip()


def _missing(text: pd.Series) -> np.ndarray:
    return text.str.lower().isin(_EMPTY).to_numpy()


def _coerce_id(series, col: Column, source: str) -> pd.Series:
    text = _as_text(series)
    if not col.nullable:
        _fail(source, col.name, _missing(text), f"empty {col.name}")
    return text.where(~_missing(text), "").astype(str)


def _coerce_timestamp(series, col: Column, source: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        out = pd.to_datetime(series, utc=True)
        _fail(source, col.name, out.isna().to_numpy(), "missing timestamp")
        return out.astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        seconds = series.to_numpy(dtype="float64", na_value=np.nan)
        text = None
    else:
        text = _as_text(series)
        _fail(source, col.name, _missing(text), "missing timestamp")
        seconds = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
    numeric = ~np.isnan(seconds)
    out_of_range = numeric & ((seconds < _MIN_TS) | (seconds > _MAX_TS))
    _fail(
        source,
        col.name,
        out_of_range,
        lambda i: (
            f"timestamp {seconds[i]:g} is out of range for unix seconds "
            "(1970..2200); milliseconds must be divided by 1000"
        ),
    )
    result = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    if numeric.any():
        result[numeric] = pd.to_datetime(seconds[numeric], unit="s", utc=True)
    if text is not None and (~numeric).any():
        iso = pd.to_datetime(text[~numeric], format="ISO8601", utc=True, errors="coerce")
        bad = np.zeros(len(series), dtype=bool)
        bad[~numeric] = iso.isna().to_numpy()
        values = text.to_numpy()
        _fail(
            source,
            col.name,
            bad,
            lambda i: f"cannot parse timestamp {values[i]!r} (expected ISO-8601 or unix seconds)",
        )
        result[~numeric] = iso
    elif text is None:
        _fail(source, col.name, ~numeric, "missing timestamp")
    return result


def _coerce_number(series, col: Column, source: str, integer: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        series = series.astype(int)
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        raw = values
    else:
        text = _as_text(series)
        raw = text.to_numpy()
        values = pd.to_numeric(text.where(~_missing(text), None), errors="coerce").to_numpy(
            dtype="float64"
        )
        unparsable = np.isnan(values) & ~_missing(text)
        _fail(source, col.name, unparsable, lambda i: f"{raw[i]!r} is not a number")
    missing = np.isnan(values)
    if col.default is not None:
        values = np.where(missing, float(col.default), values)
        missing = np.zeros_like(missing)
    elif not col.nullable:
        _fail(source, col.name, missing, f"missing {col.name}")
    _fail(source, col.name, np.isinf(values), lambda i: f"{col.name} must be finite")
    if col.minimum is not None:
        _fail(
            source,
            col.name,
            ~missing & (values < col.minimum),
            lambda i: f"{col.name} must be >= {col.minimum:g}, got {values[i]:g}",
        )
    if integer:
        _fail(
            source,
            col.name,
            ~missing & (values != np.round(values)),
            lambda i: f"{col.name} must be a whole number, got {values[i]:g}",
        )
        if missing.any():
            return pd.Series(values, index=series.index).round().astype("Int64")
        return pd.Series(values.astype("int64"), index=series.index)
    return pd.Series(values, index=series.index, dtype="float64")


def _coerce_bool(series, col: Column, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.astype(bool)
    text = _as_text(series).str.lower()
    missing = _missing(text)
    valid = text.isin(_TRUE | _FALSE).to_numpy() | missing
    raw = text.to_numpy()
    _fail(
        source,
        col.name,
        ~valid,
        lambda i: f"{raw[i]!r} is not a boolean (use true/false, yes/no or 1/0)",
    )
    out = text.isin(_TRUE)
    if missing.any():
        out[missing] = bool(col.default) if col.default is not None else False
    return out.astype(bool)


def _coerce_json(series, col: Column, source: str) -> pd.Series:
    """JSON objects, kept as canonical JSON text (empty object when missing)."""
    values = series.to_numpy(dtype=object)
    out = np.full(len(values), "{}", dtype=object)
    present = series.notna().to_numpy().copy()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        present &= ~_missing(_as_text(series.where(series.notna(), "")))
    for i in np.flatnonzero(present):  # files without properties skip the Python loop
        value = values[i]
        if isinstance(value, dict):
            obj = value
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            obj = {}
        else:
            text = str(value).strip()
            if not text:
                obj = {}
            else:
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataValidationError(
                        source, f"invalid JSON ({exc.msg})", row=i + 1, column=col.name
                    ) from None
        if not isinstance(obj, dict):
            raise DataValidationError(
                source,
                'must be a JSON object like {"key": "value"}',
                row=i + 1,
                column=col.name,
            )
        out[i] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return pd.Series(out, index=series.index, dtype=object).astype(str)


def _coerce_event_type(series, col: Column, source: str) -> pd.Series:
    text = _as_text(series).str.lower()
    missing = _missing(text)
    text = text.where(~missing, str(col.default))
    raw = text.to_numpy()
    _fail(
        source,
        col.name,
        ~text.isin(EVENT_TYPES).to_numpy(),
        lambda i: f"unknown event type {raw[i]!r}; expected one of {', '.join(EVENT_TYPES)}",
    )
    return text.astype(str)


def _coerce_str(series, col: Column, source: str) -> pd.Series:
    text = _as_text(series)
    return text.where(~_missing(text), "").astype(str)


_COERCERS = {
    "id": _coerce_id,
    "timestamp": _coerce_timestamp,
    "int": lambda s, c, src: _coerce_number(s, c, src, integer=True),
    "float": lambda s, c, src: _coerce_number(s, c, src, integer=False),
    "bool": _coerce_bool,
    "json": _coerce_json,
    "event_type": _coerce_event_type,
    "str": _coerce_str,
}


def check_required_columns(columns, schema: Schema, source: str) -> None:
    """Fail with a message naming the missing column(s) and what the file does have."""
    present = list(columns)
    missing = [name for name in schema.required if name not in present]
    if not missing:
        return
    hint = ""
    if len(present) == 1:
        header = str(present[0])
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in header:
                hint = f"; the header looks separated by {name}: pass the matching delimiter"
                break
    raise DataValidationError(
        source,
        f"missing required column(s) {', '.join(map(repr, missing))}; "
        f"found {', '.join(map(repr, present)) or 'none'}{hint}",
        column=missing[0],
    )


def validate_frame(raw: pd.DataFrame, schema: Schema, source: str = "<frame>") -> pd.DataFrame:
    """Validate ``raw`` against ``schema`` and return a canonical frame.

    Columns outside the schema are dropped; optional columns that are absent get their default
    (or empty) value, so the result always has exactly ``schema.names``.

    Raises
    ------
    DataValidationError
        On the first problem, naming ``source``, the 1-based row, the column and the value.
    """
    check_required_columns(raw.columns, schema, source)
    raw = raw.reset_index(drop=True)
    out = {}
    for col in schema.columns:
        if col.name in raw.columns:
            out[col.name] = _COERCERS[col.kind](raw[col.name], col, source)
        else:
            out[col.name] = _absent(col, len(raw))
    frame = pd.DataFrame(out)
    if schema.name == "events":
        needs_item = ~frame["event_type"].isin(EVENTS_WITHOUT_ITEM).to_numpy()
        _fail(source, "item_id", needs_item & (frame["item_id"] == "").to_numpy(), "empty item_id")
    for key in schema.key:
        dup = frame[key].duplicated().to_numpy()
        values = frame[key].to_numpy()
        _fail(source, key, dup, lambda i, v=values, k=key: f"duplicate {k} {v[i]!r}")
    return frame


def _absent(col: Column, n: int) -> pd.Series:
    if col.kind == "json":
        return pd.Series(["{}"] * n, dtype=object).astype(str)
    if col.kind in ("str", "id"):
        return pd.Series([""] * n, dtype=object).astype(str)
    if col.kind == "bool":
        return pd.Series(np.full(n, bool(col.default)), dtype=bool)
    if col.kind == "int":
        return pd.Series(np.full(n, int(col.default or 0)), dtype="int64")
    if col.kind == "float":
        return pd.Series(np.full(n, np.nan), dtype="float64")
    if col.kind == "event_type":
        return pd.Series([str(col.default)] * n, dtype=object).astype(str)
    raise ValueError(f"column {col.name!r} has no default")
