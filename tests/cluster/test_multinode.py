"""The service on a real two-node Ray cluster (tests/cluster/conftest.py), in this order:
placement on both nodes under load, autoscaling up and down under a load step, then the second
node stopped under load: the service keeps answering, the model replica comes back on the head,
and no acknowledged event is lost."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.utils.http import auth

pytestmark = pytest.mark.slow


def test_replicas_on_both_nodes_answer(deployed):
    cluster = deployed.cluster
    assert cluster.nodes_alive() == {"head": True, "worker": True}
    placed = cluster.replicas()
    # by node labels, not luck: the ingress (and the campaign worker) on the head, the model on
    # the second node
    assert placed["api"] == ["head"] and placed["campaign_worker"] == ["head"]
    assert placed["model"] and set(placed["model"]) == {"worker"}, placed

    phase = deployed.generator.phase("recommendations", 2, duration=3)
    assert phase.latencies and phase.errors == 0, phase.summary()
    # each answer crossed both nodes: the proxy and ingress on the head asked the model
    # replica on the second node (the only replicas of those deployments)
    headers = auth(deployed.key)
    user = deployed.users[0]
    answer = httpx.get(
        f"{cluster.base_url}/v1/users/{user}/recommendations?k=5", headers=headers, timeout=30
    )
    assert answer.status_code == 200 and len(answer.json()["items"]) == 5
    assert cluster.replicas()["model"] == placed["model"]


def test_autoscaling_up_under_load_and_down_after(deployed, bench):
    report = bench.autoscale(deployed.cluster, deployed.generator, concurrency=8)
    counts = [count for _, count in report["replicas_over_time"]]
    assert report["scaled_up_to_max_s"] is not None, report
    assert max(counts) == bench.QUICK_AUTOSCALING["model_max_replicas"], report
    assert report["scaled_down_to_min_after_load_s"] is not None, report
    assert counts[-1] == bench.QUICK_AUTOSCALING["model_min_replicas"], report
    # the added replica went where the labels say, too
    assert set(report["replica_nodes_at_peak"]["model"]) == {"worker"}, report
    assert report["requests"] and report["errors"] == 0, report
    print(json.dumps(report))  # replicas over time, with -s


def test_worker_node_stopped_under_load(deployed, bench):
    report = bench.failover(
        deployed.cluster, deployed.generator, "ray-stop", key=deployed.key,
        users=deployed.users, items=deployed.items,
        database_url=deployed.settings["database_url"], concurrency=4,
    )  # fmt: skip
    assert deployed.cluster.nodes_alive()["worker"] is False, report
    # the lost model replica was re-placed on the head (the label is a preference)
    assert report["model_replica_running_on_head_s"] is not None, report
    assert set(report["replicas_after"]["model"]) == {"head"}, report
    # the service kept answering: p99 came back within 1.5x of before, without errors
    assert report["p99_back_within_1_5x_s"] is not None, report
    assert report["requests_after_kill"] > report["errors_after_kill"], report
    # every acknowledged event is in the store
    assert report["events_acknowledged"] > 0, report
    assert report["acknowledged_events_missing"] == 0, report
    print(json.dumps(report))  # the figures, with -s
