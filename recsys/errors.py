"""The one error family: every error recsys raises on purpose is a ``RecsysError`` of one kind.

The kinds are what the boundaries map, and they map nothing else:

==================  ===========  ==========================================================
kind                HTTP status  meaning
==================  ===========  ==========================================================
InvalidInputError   422          the caller's input (file, request, config, option) is wrong
NotFoundError       404          the thing asked for does not exist
UnavailableError    503          a dependency (GPU, database, registry, model) is missing
ConflictError       409          the request clashes with the current state
==================  ===========  ==========================================================

The HTTP layer (``serving/app.py``) and the CLI (``recsys_cli/main.py``) choose status codes and
exit codes from the kind; library code never does. Anything that is not a ``RecsysError``
(a bare ``ValueError`` or ``TypeError`` from a bug) is an internal error: a 500 with a logged
traceback, or a CLI crash with exit code 1 — never a 422 or a usage error.

Specific errors derive from a kind and, where callers already catch a builtin, from that builtin
too (``DataValidationError`` is an ``InvalidInputError`` and a ``ValueError``).
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base of every error recsys raises on purpose."""


class InvalidInputError(RecsysError, ValueError):
    """Input from outside (a file, a request, a config, a CLI option) that cannot be accepted."""


class DocumentError(InvalidInputError):
    """A JSON document (segment or campaign definition, ...) refused at one place in it.

    ``path`` is the JSON path of the offending part (``definition.steps.wait.seconds``) and
    ``problem`` says what is wrong; the message is ``"<path>: <problem>"``.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


class NotFoundError(RecsysError, LookupError):
    """Something asked for by id or name does not exist."""

    def __str__(self) -> str:  # KeyError-derived subclasses would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class UnavailableError(RecsysError, RuntimeError):
    """A dependency the operation needs is missing or unreachable (GPU, database, registry)."""


class ConflictError(RecsysError):
    """The operation clashes with the current state (already exists, not ready, too new)."""


__all__ = [
    "ConflictError",
    "DocumentError",
    "InvalidInputError",
    "NotFoundError",
    "RecsysError",
    "UnavailableError",
]
