"""The error every data boundary raises: it names the source, row, column and problem."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Input data that cannot be accepted.

    Attributes
    ----------
    source : str
        File name (or ``"<request>"``, ``"<frame>"``) the bad data came from.
    row : int or None
        1-based data row (the header is not counted); ``None`` when the problem is file-wide.
    column : str or None
        Column (canonical name) at fault, when one is.
    problem : str
        What is wrong, in words.
    """

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        more: int = 0,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        self.problem = problem
        self.more = more
        where = [source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        message = f"{', '.join(where)}: {problem}"
        if more:
            message += f" ({more} more row(s) with the same problem)"
        super().__init__(message)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "row": self.row,
            "column": self.column,
            "problem": self.problem,
        }
