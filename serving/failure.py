"""A request the model refused, as plain data that crosses the Ray process boundary.

Library errors need not pickle (``DataValidationError`` takes keyword arguments), so the model
side sends a ``Failure`` (the error's kind and message) and the API side raises that kind again;
``serving/app.py`` maps the kind to a status code.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RecsysError,
    UnavailableError,
)

KINDS: dict[str, type[RecsysError]] = {
    kind.__name__: kind
    for kind in (InvalidInputError, NotFoundError, UnavailableError, ConflictError, RecsysError)
}
"""The error kinds a Failure carries, most specific first (RecsysError: kind-less)."""


@dataclass(frozen=True)
class Failure:
    """The error kind (a name in ``KINDS``) and message of a refused request."""

    kind: str
    detail: str

    @classmethod
    def of(cls, error: RecsysError) -> Failure:
        kind = next(name for name, kind in KINDS.items() if isinstance(error, kind))
        return cls(kind, str(error))

    def error(self) -> RecsysError:
        """The error to raise on this side of the boundary: same kind, same message."""
        return KINDS.get(self.kind, RecsysError)(self.detail)
