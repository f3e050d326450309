"""The overview's live figures come from the service's own metrics: events and recommendation
answers of the last minute, and the answers' p99."""

from __future__ import annotations

import re

from serving.metrics import RecentTraffic
from tests.serving.console.test_console_security import sign_in
from tests.utils.http import auth


def _figure(html: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">([^<]*)<', html).group(1).strip()


def test_overview_counts_what_the_api_just_did(client, keys):
    events = [{"user_id": "u0001", "item_id": "i0001", "event_type": "view"}] * 3
    events = [dict(e, event_id=f"e{i}") for i, e in enumerate(events)]
    assert client.post("/v1/events", json={"events": events},
                       headers=auth(keys["ingest"])).status_code == 200  # fmt: skip
    for _ in range(2):
        answer = client.get("/v1/users/u0001/recommendations", headers=auth(keys["read"]))
        assert answer.status_code == 200
    sign_in(client, keys["read"])
    html = client.get("/console/").text
    assert _figure(html, "events-per-minute") == "3"
    assert _figure(html, "recommendations-per-minute") == "2"
    assert _figure(html, "recommendations-p99").endswith(" ms")
    assert _figure(html, "model-version")


def test_recent_traffic_forgets_what_is_older_than_its_window():
    traffic = RecentTraffic(window_s=300)
    traffic.note_events(5, now=0.0)
    traffic.note_events(2, now=250.0)
    for i, seconds in enumerate([0.010] * 99 + [0.500]):
        traffic.note_answer(seconds, now=260.0 + i * 0.1)
    summary = traffic.summary(now=280.0)
    assert summary["events_per_minute"] == 2  # the 5 at t=0 are over a minute old
    assert summary["recommendations_per_minute"] == 100
    assert summary["recommendations_p99_ms"] == 500.0
    later = traffic.summary(now=700.0)
    assert later == {"events_per_minute": 0, "recommendations_per_minute": 0,
                     "recommendations_p99_ms": None, "window_s": 300}  # fmt: skip
