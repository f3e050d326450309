"""Per-column coercion rules shared by whole-file validation and per-record validation.

Every coercer takes one raw column (text from CSV, typed values from Parquet, Python objects from
JSON records) and returns a :class:`~recsys.data.issues.Coerced`: the canonical values plus the
issues found, each a mask of rows at fault and a function that words the problem of one row. A
row is at fault for at most one issue per column. The caller decides what to do with them: raise
on the first bad row (files, all-or-nothing) or reject the bad rows one by one (the event API).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from recsys.data.frame import pd
from recsys.data.issues import Checks, Coerced, Issue, kind_of, wrong_type
from recsys.data.schemas import EVENT_TYPES, Column
from recsys.data.text import NULL_WORDS, as_numbers, text_view, to_float
from recsys.data.timestamps import coerce_timestamp

__all__ = ["COERCERS", "Coerced", "Issue", "absent_column", "coerce_column"]

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})


def _coerce_id(series: pd.Series, col: Column) -> Coerced:
    t = text_view(series)
    checks = Checks(len(series))
    checks.add(t.structured | t.boolean, wrong_type(series, "text or a whole number"))
    if not col.nullable:
        checks.add(t.missing, f"empty {col.name}")
    return Coerced(t.text, checks.issues)


def _coerce_str(series: pd.Series, col: Column) -> Coerced:
    t = text_view(series, null_words=False)
    checks = Checks(len(series))
    checks.add(t.structured, wrong_type(series, "text"))
    return Coerced(t.text, checks.issues)


def _coerce_integers(series: pd.Series, col: Column, integer: bool) -> Coerced:
    """Fast path for integer columns without gaps (Parquet): only the minimum can fail."""
    values = series.to_numpy(dtype="int64")
    checks = Checks(len(series))
    if col.minimum is not None:
        checks.add(
            values < col.minimum,
            lambda i: f"{col.name} must be >= {col.minimum:g}, got {values[i]}",
        )
    if not integer:
        return Coerced(pd.Series(values, index=series.index, dtype="float64"), checks.issues)
    return Coerced(pd.Series(values, index=series.index), checks.issues)


def _coerce_number(series: pd.Series, col: Column, integer: bool) -> Coerced:
    series = as_numbers(series)
    n = len(series)
    checks = Checks(n)
    if pd.api.types.is_bool_dtype(series):
        values = series.astype("float64").to_numpy(na_value=np.nan)
    elif pd.api.types.is_integer_dtype(series) and not series.hasnans:
        return _coerce_integers(series, col, integer)
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        t = text_view(series)
        checks.add(t.structured | t.boolean, wrong_type(series, "a number"))
        values = np.full(n, np.nan)
        present = ~t.missing & ~checks.bad
        if present.any():
            values[present] = to_float(t.text[present])
        checks.add(present & np.isnan(values), lambda i: f"{t.text.iloc[i]!r} is not a number")
    missing = np.isnan(values) & ~checks.bad
    if col.default is not None:
        values = np.where(missing, float(col.default), values)
        missing[:] = False
    elif not col.nullable:
        checks.add(missing, f"missing {col.name}")
    checks.add(np.isinf(values), f"{col.name} must be finite")
    if col.minimum is not None:
        below = ~missing & (values < col.minimum)
        checks.add(below, lambda i: f"{col.name} must be >= {col.minimum:g}, got {values[i]:g}")
    if integer:
        checks.add(
            ~missing & ((values != np.round(values)) | (np.abs(values) > 2**53)),
            lambda i: f"{col.name} must be a whole number, got {values[i]:g}",
        )
        clean = np.where(checks.bad, 0, values)
        if missing.any():
            out = pd.Series(np.where(missing, np.nan, clean), index=series.index)
            return Coerced(out.astype("Int64"), checks.issues)
        return Coerced(pd.Series(clean.astype("int64"), index=series.index), checks.issues)
    clean = np.where(checks.bad, np.nan, values)
    return Coerced(pd.Series(clean, index=series.index, dtype="float64"), checks.issues)


def _coerce_bool(series: pd.Series, col: Column) -> Coerced:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return Coerced(series.astype(bool))
    t = text_view(series)
    checks = Checks(len(series))
    checks.add(t.structured, wrong_type(series, "a boolean"))
    lower = t.text.str.lower()
    checks.add(
        ~(lower.isin(TRUE_WORDS | FALSE_WORDS).to_numpy() | t.missing),
        lambda i: f"{t.text.iloc[i]!r} is not a boolean (use true/false, yes/no or 1/0)",
    )
    out = np.array(lower.isin(TRUE_WORDS).to_numpy(), dtype=bool)
    out[t.missing] = bool(col.default) if col.default is not None else False
    return Coerced(pd.Series(out, index=series.index, dtype=bool), checks.issues)


def _coerce_event_type(series: pd.Series, col: Column) -> Coerced:
    if pd.api.types.is_string_dtype(series) and series.isin(EVENT_TYPES).all():
        return Coerced(series.astype(str))  # the usual case: one pass
    t = text_view(series)
    checks = Checks(len(series))
    checks.add(t.structured | t.boolean, wrong_type(series, "an event type"))
    text = t.text
    if not text.isin(EVENT_TYPES).all():  # lower-casing 2M values costs more than checking
        text = text.str.lower()
    if t.missing.any():
        text = text.where(~t.missing, str(col.default))
    checks.add(
        ~text.isin(EVENT_TYPES).to_numpy(),
        lambda i: (
            f"unknown event type {t.text.iloc[i]!r}; expected one of {', '.join(EVENT_TYPES)}"
        ),
    )
    if checks.issues:
        text = text.where(~checks.bad, str(col.default))
    return Coerced(text, checks.issues)


def _json_default(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays inside Parquet structs
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One encoder for all cells: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
)


def _json_object(value) -> dict:
    """One JSON-object cell as a dict; raises ValueError with the problem."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'must be a JSON object like {{"key": "value"}}, got text that is not '
                f"JSON (invalid JSON: {exc.msg} at character {exc.pos})"
            ) from None
    elif isinstance(value, list | np.ndarray) and all(  # Parquet map columns: [(key, value)]
        isinstance(pair, tuple) and len(pair) == 2 for pair in value
    ):
        value = dict(value)
    if not isinstance(value, dict):
        raise ValueError(f'must be a JSON object like {{"key": "value"}}, got {kind_of(value)}')
    return value


def _coerce_json(series: pd.Series, col: Column) -> Coerced:
    """JSON objects, kept as canonical JSON text (empty object when missing)."""
    n = len(series)
    out = np.full(n, "{}", dtype=object)
    present = series.notna().to_numpy().copy()
    if pd.api.types.is_string_dtype(series) and series.dtype != object:
        present &= ~series.str.strip().isin(NULL_WORDS).to_numpy()
    problems: dict[int, str] = {}
    values = series.to_numpy(dtype=object)
    for i in np.flatnonzero(present):  # files without JSON values skip the Python loop
        value = values[i]
        if isinstance(value, str) and value.strip() in NULL_WORDS:
            continue
        try:
            out[i] = _ENCODER.encode(_json_object(value))
        except (TypeError, ValueError) as exc:
            problems[i] = str(exc)
    checks = Checks(n)
    if problems:
        mask = np.zeros(n, dtype=bool)
        mask[list(problems)] = True
        checks.add(mask, problems.__getitem__)
        out[mask] = "{}"
    return Coerced(pd.Series(out, index=series.index).astype(str), checks.issues)


COERCERS: dict[str, Callable[[pd.Series, Column], Coerced]] = {
    "id": _coerce_id,
    "str": _coerce_str,
    "timestamp": coerce_timestamp,
    "int": lambda s, c: _coerce_number(s, c, integer=True),
    "float": lambda s, c: _coerce_number(s, c, integer=False),
    "bool": _coerce_bool,
    "json": _coerce_json,
    "event_type": _coerce_event_type,
}


def _coerce_categorical(series: pd.Series, col: Column) -> Coerced:
    """Coerce the categories once (Parquet dictionary columns) and spread them by code."""
    categories = series.cat.categories
    distinct = pd.Series(categories).reindex(range(len(categories) + 1))  # last: missing
    coerced = COERCERS[col.kind](distinct, col)
    codes = series.cat.codes.to_numpy()
    take = np.where(codes < 0, len(categories), codes)
    values = coerced.values.iloc[take].set_axis(series.index)
    issues = [
        Issue(issue.mask[take], lambda i, describe=issue.describe: describe(int(take[i])))
        for issue in coerced.issues
    ]
    return Coerced(values, [issue for issue in issues if issue.mask.any()])


def coerce_column(series: pd.Series, col: Column) -> Coerced:
    """Coerce one raw column to ``col``'s canonical type, collecting (not raising) problems."""
    if col.kind == "json" and series.dtype != object and pd.api.types.is_string_dtype(series):
        # JSON text repeats a lot (event properties): parse each distinct text once.
        series = series.astype("category")
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _coerce_categorical(series, col)
    return COERCERS[col.kind](series, col)


def absent_column(col: Column, n: int, index=None) -> pd.Series:
    """The column an absent optional field gets: its default, or empty."""
    if col.kind in ("json", "str", "id", "event_type"):
        text = {"json": "{}", "event_type": str(col.default)}.get(col.kind, "")
        values = pa.repeat(pa.scalar(text), n).to_pandas()  # no list of n Python strings
        return pd.Series(values.array, index=index)
    if col.kind == "bool":
        values, dtype = np.full(n, bool(col.default)), bool
    elif col.kind == "int":
        values, dtype = np.full(n, int(col.default or 0)), "int64"
    elif col.kind == "float":
        values, dtype = np.full(n, np.nan), "float64"
    else:
        raise ValueError(f"column {col.name!r} has no default")
    return pd.Series(values, index=index, dtype=dtype)
