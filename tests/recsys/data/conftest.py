"""Fixtures for the data-layer tests: write small files, check the errors they raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data.errors import DataValidationError

LEAKS = ("Traceback", "pandas", "pyarrow", "Arrow", "C error", "tokenizing", "\n")


@pytest.fixture
def write(tmp_path: Path):
    """write(name, content) -> path; str content is written as UTF-8, bytes as they are."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return _write


@pytest.fixture
def check_error():
    """check_error(excinfo, path, row, column, *words): the error names file, row, column."""

    def _check(excinfo, path, row, column, *words) -> DataValidationError:
        error = excinfo.value
        assert isinstance(error, DataValidationError)
        message = str(error)
        assert error.source == str(path) and message.startswith(str(path))
        assert error.row == row
        if row == 0:
            assert ", header" in message
        elif row is not None:
            assert f"row {row}" in message
        assert error.column == column
        if column is not None:
            assert f"column {column!r}" in message
        for word in words:
            assert word in message, f"{word!r} not in {message!r}"
        assert not any(leak in message for leak in LEAKS), message
        assert error.__cause__ is None  # no chained parser traceback
        assert error.__context__ is None or error.__suppress_context__
        return error

    return _check
