"""The error every data boundary raises: it names the source, row, column and problem."""

from __future__ import annotations

import re

from recsys.errors import InvalidInputError


class DataValidationError(InvalidInputError):
    """Input data that cannot be accepted.

    Attributes
    ----------
    source : str
        File name (or ``"<request>"``, ``"<frame>"``) the bad data came from.
    row : int or None
        1-based data row (the header is not counted); ``0`` for the header itself; ``None`` when
        the problem is file-wide.
    column : str or None
        Column (canonical name) at fault, when one is.
    problem : str
        What is wrong, in words.
    line : int or None
        1-based line of a text file where the bad row starts, when known (blank lines and
        quoted line breaks make it differ from ``row + 1``).
    """

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        more: int = 0,
        line: int | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        self.problem = re.sub(r"\s*[\r\n]+\s*", " ", str(problem)).strip()  # always one line
        self.more = more
        self.line = line
        where = [source]
        if row == 0:
            where.append("header")
        elif row is not None:
            where.append(f"row {row}" if line is None else f"row {row} (line {line})")
        if column is not None:
            where.append(f"column {column!r}")
        message = f"{', '.join(where)}: {self.problem}"
        if more:
            message += f" ({more} more row(s) with the same problem)"
        super().__init__(message)

    def at_line(self, line: int | None) -> DataValidationError:
        """The same error, saying which line of the file the row is on."""
        return DataValidationError(
            self.source,
            self.problem,
            row=self.row,
            column=self.column,
            more=self.more,
            line=line,
        )

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "row": self.row,
            "column": self.column,
            "problem": self.problem,
        }
