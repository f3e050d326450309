"""The rate-limit load test (benchmarks/rate_limits.py) at a small size: a flooding key is held
to its limit with 429s while another key's p99 stays within 1.2x of its unloaded p99."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.rate_limits import run
from tests.serving.test_privacy_routes import _redis_answers


@pytest.mark.slow
@pytest.mark.skipif(not _redis_answers(), reason="Redis does not answer at 127.0.0.1:6379")
def test_a_flooding_key_gets_429s_and_the_other_keys_p99_holds():
    args = argparse.Namespace(requests=100, rate=10.0, limit=5.0, flood=4.0, port=8767)
    for _attempt in range(2):  # one retry: the shared test machines are noisy
        summary = run(args)
        flooder, steady = summary["flooder"], summary["steady_while_flooded"]
        # 10 s at 20/s against 5/s with a one-second burst: ~55 admitted, ~145 refused.
        assert flooder["refused_429"] >= 100 and flooder["ok"] <= 70 and flooder["other"] == 0
        assert steady["ok"] == steady["requests"]  # the other key is never refused
        if summary["p99_ratio"] <= 1.2:
            break
    assert summary["p99_ratio"] <= 1.2, summary
