"""The forked fold of the SQLite import: its value comes back, its failure becomes an error in
the importing process (so the import's transaction rolls back), a killed child too."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recsys.store import forked


def test_the_value_computed_in_the_child_comes_back():
    data = np.arange(100_000)
    with ThreadPoolExecutor(1) as pool:
        result = forked.start(lambda: (int(data.sum()), os.getpid()), pool).result()
    assert result[0] == int(data.sum()) and result[1] != os.getpid()


def test_a_failure_in_the_child_is_raised_with_its_traceback():
    def broken():
        raise ValueError("bad row 7")

    with pytest.raises(RuntimeError, match="bad row 7"):
        forked.ForkedResult(broken).result()


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="ended without an answer"):
        forked.ForkedResult(lambda: os._exit(3)).result()
