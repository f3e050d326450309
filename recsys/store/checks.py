"""Checks the store adds on top of the canonical validators: what every backend can hold.

The canonical validators (:mod:`recsys.data`) decide what a value means; these decide whether
a valid value can be stored: PostgreSQL refuses NUL characters, no backend can encode lone
surrogates (JSON ``\\ud800`` escapes) as UTF-8, and ids have a column length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from recsys.store.tables import ID_LENGTH


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored by every backend (NUL, lone surrogates), or None.

    The same rule as ``recsys.ingest.text_problem`` (the store cannot import the event path).
    """
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode (lone surrogate at position {exc.start})"
    return None


def unstorable_field(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, problem)`` for the first field holding text no backend can store (keys and
    nested values included; iterative, so there is no depth limit), or None."""
    for name, value in record.items():
        stack = [name, value]
        while stack:
            current = stack.pop()
            if isinstance(current, Mapping):
                stack.extend(current.keys())
                stack.extend(current.values())
            elif isinstance(current, list | tuple):
                stack.extend(current)
            elif isinstance(current, str):
                problem = text_problem(current)
                if problem:
                    shown = str(name).encode("utf-8", "backslashreplace").decode("utf-8")
                    return shown, f"{shown} {problem}"
    return None


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
