"""Timestamps: datetimes, unix seconds or ISO-8601 text, all to UTC nanoseconds.

Naive datetimes and ISO text without an offset are taken as UTC. Values must lie in 1970..2200;
numbers beyond that which would fit as milliseconds get a message saying so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from recsys.data.frame import pd
from recsys.data.issues import Checks, Coerced, wrong_type
from recsys.data.schemas import Column
from recsys.data.text import as_numbers, text_view, to_float, try_cast

# Unix seconds outside this range are almost always milliseconds or garbage.
MIN_SECONDS, MAX_SECONDS = 0, 7_258_118_400  # 1970-01-01 .. 2200-01-01
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def _out_of_range(shown: Callable[[int], object]) -> Callable[[int], str]:
    return lambda i: f"timestamp {shown(i)} is outside 1970..2200"


def _unix_problem(seconds: np.ndarray) -> Callable[[int], str]:
    def describe(i: int) -> str:
        value = seconds[i]
        if value > MAX_SECONDS and MIN_SECONDS <= value / 1000 <= MAX_SECONDS:
            return (
                f"timestamp {value:.0f} looks like milliseconds; unix timestamps must be in "
                "seconds (divide by 1000)"
            )
        return f"timestamp {value:g} is out of range for unix seconds (1970..2200)"

    return describe


def _seconds_to_ns(seconds: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Unix seconds -> ns; whole seconds stay exact, fractions keep microseconds."""
    if seconds.dtype.kind in "iu":
        ns = seconds.astype(np.int64) * 1_000_000_000
    else:
        ns = np.round(np.where(ok, seconds, 0) * 1e6).astype(np.int64) * 1000
    return ns if ok.all() else np.where(ok, ns, 0)


def _datetime_ns(series: pd.Series, checks: Checks) -> np.ndarray:
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    raw = series.to_numpy()
    missing = np.isnat(raw)
    lo, hi = (np.datetime64(s, "s").astype(raw.dtype) for s in (MIN_SECONDS, MAX_SECONDS))
    checks.add(missing, "missing timestamp")
    checks.add(~missing & ((raw < lo) | (raw > hi)), _out_of_range(lambda i: series.iloc[i]))
    if checks.issues:
        raw = np.where(checks.bad, lo, raw)
    return raw.astype("datetime64[ns]", copy=False).view(np.int64)


def _try_iso(text: pd.Series) -> np.ndarray | None:
    """ISO-8601 text, all with offsets or all without (naive means UTC) -> ns, or None."""
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        parsed = try_cast(text, target)
        if parsed is not None:
            return parsed.astype("datetime64[ns]").view(np.int64)
    return None


def _iso_ns(text: pd.Series) -> np.ndarray:
    """ISO-8601 text (with or without offset; naive means UTC) -> ns, -1 where unparsable."""
    fast = _try_iso(text)
    if fast is not None:
        return fast
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    raw = parsed.dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    return np.where(np.isnat(raw), -1, raw.view(np.int64))


def _text_ns(text: pd.Series, ok: np.ndarray, checks: Checks) -> np.ndarray:
    """Unix seconds or ISO-8601 text (rows in ``ok``) -> ns; Arrow fast paths when uniform."""
    n = len(text)
    sub = text if ok.all() else text[ok]
    seconds = np.full(n, np.nan)
    ns = np.full(n, -1, dtype=np.int64)
    numeric = np.zeros(n, dtype=bool)
    parsed = try_cast(sub, pa.float64())
    if parsed is not None:
        numeric, seconds[ok] = ok, parsed
    else:
        iso = _try_iso(sub)
        if iso is not None:
            ns[ok] = iso
        else:  # mixed or bad: tell numbers from text row by row
            numeric = ok & text.str.fullmatch(_NUMBER).to_numpy(dtype=bool, na_value=False)
            if numeric.any():
                seconds[numeric] = to_float(text[numeric])
            rest = ok & ~numeric
            if rest.any():
                ns[rest] = _iso_ns(text[rest])
    out_of_range = (seconds < MIN_SECONDS) | (seconds > MAX_SECONDS)
    checks.add(numeric & out_of_range, _unix_problem(seconds))
    ns[numeric] = _seconds_to_ns(seconds[numeric], ~checks.bad[numeric])
    iso = ok & ~numeric
    checks.add(
        iso & (ns == -1),
        lambda i: f"cannot parse timestamp {text.iloc[i]!r} (expected ISO-8601 or unix seconds)",
    )
    lo, hi = MIN_SECONDS * 10**9, MAX_SECONDS * 10**9
    checks.add(iso & ((ns < lo) | (ns > hi)), _out_of_range(lambda i: repr(text.iloc[i])))
    return np.where(checks.bad, 0, ns)


def coerce_timestamp(series: pd.Series, col: Column) -> Coerced:
    """Any raw timestamp column -> ``datetime64[ns, UTC]`` plus the issues found."""
    series = as_numbers(series)
    checks = Checks(len(series))
    if pd.api.types.is_datetime64_any_dtype(series):
        ns = _datetime_ns(series, checks)
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if pd.api.types.is_integer_dtype(series) and not series.hasnans:
            seconds = series.to_numpy(dtype="int64")  # exact, no float round trip
            missing = np.zeros(len(series), dtype=bool)
        else:
            seconds = series.to_numpy(dtype="float64", na_value=np.nan)
            missing = np.isnan(seconds)
            checks.add(missing, "missing timestamp")
        out_of_range = (seconds < MIN_SECONDS) | (seconds > MAX_SECONDS)
        checks.add(~missing & out_of_range, _unix_problem(seconds))
        ns = _seconds_to_ns(seconds, ~checks.bad)
    else:
        t = text_view(series)
        checks.add(t.structured | t.boolean, wrong_type(series, "ISO-8601 text or unix seconds"))
        checks.add(t.missing, "missing timestamp")
        ns = _text_ns(t.text, ~checks.bad, checks)
    utc = pd.array(ns.view("datetime64[ns]"), dtype="datetime64[ns, UTC]")  # a view: no tz pass
    return Coerced(pd.Series(utc, index=series.index), checks.issues)
