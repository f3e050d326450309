"""Run a pure computation in a forked child process while this process goes on.

The SQLite import binds every inserted row under the GIL (the driver releases it only inside
``sqlite3_step``), so a thread computing the profile and aggregate fold beside it either
starves or slows the insert; a forked child computes on the other core from a copy-on-write
view of the frame and sends its rows back through a pipe. Where ``fork`` is not available the
computation runs in a thread instead (same result, less overlap).
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def _run(compute: Callable[[], Any], conn) -> None:
    try:
        conn.send(("ok", compute()))
    except BaseException:  # the parent re-raises it with the child's traceback
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ForkedResult:
    """``compute()`` started in a forked child; :meth:`result` waits for its value."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run, args=(compute, child_end), name="recsys-fold", daemon=True
        )
        self._process.start()
        child_end.close()

    def result(self) -> Any:
        try:
            status, value = self._conn.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the fold process ended without an answer (exit code {self._process.exitcode})"
            ) from None
        finally:
            self._conn.close()
        self._process.join()
        if status != "ok":
            raise RuntimeError(f"the fold process failed:\n{value}")
        return value


def start(compute: Callable[[], Any], pool: ThreadPoolExecutor) -> ForkedResult | Future:
    """``compute()`` in a forked child when the platform can fork, else on ``pool``."""
    if "fork" in multiprocessing.get_all_start_methods():
        return ForkedResult(compute)
    return pool.submit(compute)
