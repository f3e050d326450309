"""Checks the store adds on top of the canonical validators: what every backend can hold.

The canonical validators (:mod:`recsys.data`) decide what a value means; these decide whether
a valid value can be stored: PostgreSQL refuses NUL characters, no backend can encode lone
surrogates (JSON ``\\ud800`` escapes) as UTF-8, and ids have a column length.
"""

from __future__ import annotations

import json
from typing import Any

from recsys.data.event_check import text_problem, unstorable_field
from recsys.store.tables import ID_LENGTH

__all__ = ["id_problem", "json_object", "text_problem", "unstorable_field"]


def id_problem(name: str, value: str) -> str | None:
    """Why an id cannot be stored (too long for its column), or None."""
    if len(value) > ID_LENGTH:
        return f"{name} is longer than {ID_LENGTH} characters"
    return None


def json_object(text: Any) -> dict[str, Any] | None:
    """A canonical JSON column value (JSON text, ``{}`` when absent) as a dict, None if empty."""
    if text is None or text == "":
        return None
    value = json.loads(text) if isinstance(text, str) else dict(text)
    return value or None
