"""`recsys segments refresh|sweep` on a real SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from recsys.segments.service import rfm_segment_id
from recsys.store import Store
from recsys_cli.main import app


def test_refresh_scores_rfm_and_fills_the_built_in_groups(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(url)
    now = datetime.now(UTC)
    store.events.append(
        [
            {
                "user_id": f"u{i}",
                "item_id": "i1",
                "event_type": "purchase",
                "timestamp": now - timedelta(days=i),
                "value": float(i + 1),
            }
            for i in range(25)
        ]  # fmt: skip
    )
    result = CliRunner().invoke(
        app, ["segments", "refresh", "--database-url", url, "--json", "--no-clusters"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["customers"] == 25 and summary["rfm_scored"] == 25
    assert summary["changes"] == 25  # everyone entered exactly one RFM group
    sizes = [store.segments.size(s["id"]) for s in store.segments.all()]
    assert len(sizes) == 11 and sum(sizes) == 25
    assert store.segments.user_segments("u0")[0]["segment_id"] != rfm_segment_id("Lost")
    swept = CliRunner().invoke(app, ["segments", "sweep", "--once", "--database-url", url])
    assert swept.exit_code == 0, swept.output
    assert store.segments.get_state("sweep")["changes"] == 0
    store.close()
