"""RECSYS_LOG_FORMAT=json: every log line is one JSON object, with the request id inside a
request (the real app, a real request) and in a CLI subprocess."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from recsys.logs import JsonFormatter, configure_logging
from recsys.settings import get_settings
from tests.utils.http import auth


@pytest.fixture
def json_log():
    """The root logger writes JSON lines into a buffer for the test, then is put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _lines(buffer: io.StringIO) -> list[dict]:
    text = buffer.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # each line alone is JSON


def test_a_request_logs_json_lines_with_its_request_id(client, keys, json_log):
    given = client.post(
        "/v1/admin/reload", headers={**auth(keys["admin"]), "X-Request-ID": "reload-42"}
    )
    assert given.status_code == 200
    generated = client.post("/v1/admin/reload", headers=auth(keys["admin"]))
    generated_id = generated.headers["X-Request-ID"]
    logging.getLogger("tests.outside").warning("no request here")

    lines = _lines(json_log)
    swaps = [line for line in lines if line["message"].startswith("serving model")]
    assert [line["request_id"] for line in swaps] == ["reload-42", generated_id]
    first = swaps[0]
    assert first["level"] == "INFO" and first["logger"] == "serving.model_server"
    assert first["time"].endswith("+00:00")
    outside = [line for line in lines if line["logger"] == "tests.outside"]
    assert outside == [{**outside[0], "level": "WARNING", "message": "no request here"}]
    assert "request_id" not in outside[0]


def test_exceptions_are_one_line_with_the_traceback_as_text():
    try:
        raise ValueError('bad "value"\nsecond line')
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("ü",), sys.exc_info(),
            extra={"request_id": "r1", "rows": 3},
        )  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["message"] == "failed: ü" and parsed["request_id"] == "r1"
    assert parsed["rows"] == 3
    assert parsed["exc_info"].startswith("Traceback") and "ValueError" in parsed["exc_info"]


def test_the_setting_is_checked(monkeypatch):
    monkeypatch.setenv("RECSYS_LOG_FORMAT", "xml")
    with pytest.raises(Exception, match="RECSYS_LOG_FORMAT"):
        get_settings()


def test_the_cli_writes_json_lines(tmp_path):
    env = {
        **os.environ,
        "RECSYS_LOG_FORMAT": "json",
        "RECSYS_LOG_LEVEL": "INFO",
        "RECSYS_DATABASE_URL": f"sqlite:///{tmp_path / 'recsys.db'}",
        "RECSYS_VAR_DIR": str(tmp_path / "var"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "recsys_cli.main", "keys", "create", "--role", "read"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *logged, told = done.stderr.splitlines()
    assert told.endswith("store it now, it is not shown again")  # the command's answer, no log
    lines = [json.loads(line) for line in logged]
    assert {"recsys.store.migrations", "recsys.store.keys"} <= {line["logger"] for line in lines}
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_the_handler_follows_stderr_instead_of_keeping_a_closed_one(monkeypatch):
    """A CLI call under a test runner must not leave a handler on a capture closed since."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        captured = io.StringIO()
        monkeypatch.setattr("sys.stderr", captured)
        configure_logging("INFO", "text")
        captured.close()
        live = io.StringIO()
        monkeypatch.setattr("sys.stderr", live)
        logging.getLogger("recsys.test").info("after the capture closed")
        assert "after the capture closed" in live.getvalue()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
