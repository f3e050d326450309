"""The fields an ``attribute`` node may name, and how to read one from a customer.

A customer is seen as one flat document: the customer attributes (``email``, ``country``,
``time_zone``, ``consents.<name>``, ``attributes.<path>``), the profile aggregates
(``first_seen``, ``last_seen``, ``event_count``, ``purchase_count``, ``revenue``,
``last_purchase_at``, ``category_purchases.<category>``, ``category_spend.<category>``,
``last_event.<event type>``, ``cart_items``, ``cart_quantity``, ``cart_value``), the RFM scores
(``rfm_r``, ``rfm_f``, ``rfm_m``, ``rfm_group``), the ``cluster`` and fields derived from the
clock (``customer_age_days``, ``days_since_last_purchase``, ``days_since_last_seen``), which
make a segment time-dependent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from recsys.data.schemas import EVENT_TYPES

SCALAR_FIELDS = frozenset(
    (
        "email",
        "country",
        "time_zone",
        "first_seen",
        "last_seen",
        "event_count",
        "purchase_count",
        "revenue",
        "last_purchase_at",
        "cart_items",
        "cart_quantity",
        "cart_value",
        "rfm_r",
        "rfm_f",
        "rfm_m",
        "rfm_group",
        "cluster",
    )
)
NESTED_FIELDS = frozenset(
    ("consents", "attributes", "category_purchases", "category_spend", "last_event")
)
CLOCK_FIELDS = {
    "customer_age_days": "first_seen",
    "days_since_last_purchase": "last_purchase_at",
    "days_since_last_seen": "last_seen",
}
"""Derived fields: days from the named timestamp to now."""
# Which fields events change (the rest change only by a customer update or the batch job).
EVENT_FIELDS = frozenset(
    ("first_seen", "last_seen", "event_count", "purchase_count", "revenue", "last_purchase_at")
    + ("category_purchases", "category_spend", "last_event", "cart_items", "cart_quantity")
    + ("cart_value", "rfm_r", "rfm_f", "rfm_m", "rfm_group")
)
_DAY = 86400.0


def check_path(path: str) -> None:
    """Raise ``ValueError`` (reported at the node's ``path``) unless ``path`` names a field."""
    root, _, rest = path.partition(".")
    if root in NESTED_FIELDS:
        if not rest:
            raise ValueError(f"{root!r} needs a key, e.g. '{root}.<name>'")
        if root == "last_event" and rest not in EVENT_TYPES:
            raise ValueError(f"unknown event type {rest!r}; expected one of {list(EVENT_TYPES)}")
        return
    if root in SCALAR_FIELDS or root in CLOCK_FIELDS:
        if rest:
            raise ValueError(f"{root!r} has no keys (got {path!r})")
        return
    known = sorted(SCALAR_FIELDS | CLOCK_FIELDS.keys() | {f"{n}.<key>" for n in NESTED_FIELDS})
    raise ValueError(f"unknown field {root!r}; expected one of {known}")


def read_field(doc: dict[str, Any], path: str, now: datetime) -> Any:
    """The value of ``path`` in the customer document ``doc`` (``None`` when absent)."""
    return field_reader(path)(doc, now)


def field_reader(path: str) -> Callable[[dict[str, Any], datetime], Any]:
    """:func:`read_field` for one ``path``, with the path parsed once (compiled definitions)."""
    if path in CLOCK_FIELDS:
        stamp_field = CLOCK_FIELDS[path]

        def clock(doc: dict[str, Any], now: datetime) -> Any:
            stamp = doc.get(stamp_field)
            return None if stamp is None else (now - stamp).total_seconds() / _DAY

        return clock
    root, _, rest = path.partition(".")
    if not rest:
        return lambda doc, _now: doc.get(root)
    keys = tuple(rest.split(".")) if root == "attributes" else (rest,)

    def nested(doc: dict[str, Any], _now: datetime) -> Any:
        value = doc.get(root)
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return nested


def _ordered(a: Any, b: Any) -> bool:
    # Comparisons only between numbers or between texts; anything else does not match.
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def compare(value: Any, op: str, expected: Any) -> bool:
    """``value op expected`` with the operators of an ``attribute`` node (absent never matches
    except for ``ne`` and ``not_exists``)."""
    if op == "exists":
        return value is not None
    if op == "not_exists":
        return value is None
    if op == "ne":
        return value != expected
    if value is None:
        return False
    if isinstance(value, datetime) and isinstance(expected, str):
        value = value.isoformat()
    if op == "eq":
        return value == expected
    if op == "in":
        return value in expected
    if op == "contains":
        if isinstance(value, str) and isinstance(expected, str):
            return expected in value
        return isinstance(value, list | dict) and expected in value
    if not _ordered(value, expected):
        return False
    if op == "gt":
        return value > expected
    if op == "gte":
        return value >= expected
    if op == "lt":
        return value < expected
    return value <= expected  # lte
