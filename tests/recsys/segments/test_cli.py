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


def test_load_the_example_segments_then_again_unchanged(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    args = ["segments", "load", "configs/segments", "--database-url", url]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "created cart-abandoners-1h" in first.output
    assert "11 RFM group segment(s) created" in first.output
    store = Store.open(url)
    ids = {s["id"] for s in store.segments.all()}
    assert {"cart-abandoners-1h", "razors-twice-30d", rfm_segment_id("Lost")} <= ids
    store.close()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "unchanged razors-twice-30d" in again.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("id: x\nname: X\ndefinition: {type: performed}\n")
    failed = CliRunner().invoke(app, ["segments", "load", str(bad), "--database-url", url])
    assert str(failed.exception) == "x.yaml:definition.event_type: is required"
