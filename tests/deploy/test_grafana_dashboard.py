"""deploy/grafana/recsys.json: a valid dashboard whose every query names a metric that exists.

- Service metrics (``recsys_*``): the real app's ``/metrics`` is scraped after real requests (a
  recommendation, events, a segment entry, an error-free admin call), and each name must be a
  sample name there under prometheus_client's suffix rules (counter ``F`` -> ``F_total``,
  histogram ``F`` -> ``F_bucket``/``_sum``/``_count``, gauge ``F`` -> ``F``); the labels a query
  groups by or matches on must be labels of that metric's samples (plus Prometheus's ``job`` and
  ``instance``).
- Ray Serve metrics (``ray_*``): Ray exports each ``ray.util.metrics`` Counter / Gauge / Histogram
  named ``N`` as ``ray_N`` (``ray/_private/metrics_agent.py`` adds the namespace; counters get
  ``_total``, histograms ``_bucket``...). A live scrape needs a Ray cluster with its metrics agent
  (tens of seconds and ~1 GB here), so the names are checked against the metric definitions in
  the installed ray package's source instead: every ``Counter(...)``/``Gauge(...)``/
  ``Histogram(...)`` call under ``ray/serve`` whose name is a string (f-string placeholders such
  as ``serve_num_{protocol_name}_requests`` match any word), with the type the suffix implies.

The PromQL is read by a small tokenizer (no PromQL parser is installed): strings, range
selectors and label matchers are taken apart, and identifiers that are not functions, keywords
or grouping labels are metric names.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.http import auth

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "recsys.json"
RAY_SERVE = Path(ray.__file__).parent / "serve"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan"}  # fmt: skip
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus to every series it scrapes
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression: panel targets and query variables."""
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", var["query"]["query"])
            assert match, f"variable {var['name']}: unexpected query {var['query']!r}"
            found.append(match.group(1))
    return found


def parse(expr: str) -> tuple[set[str], set[str]]:
    """The metric names of ``expr`` and the labels it groups by or matches on."""
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    labels: set[str] = set()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings can hold anything
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors: [5m], [$__rate_interval]

    def matchers(m: re.Match) -> str:
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(1)))
        return " "

    text = re.sub(r"\{([^}]*)\}", matchers, text)

    def grouping(m: re.Match) -> str:
        labels.update(re.findall(r"[a-zA-Z_]\w*", m.group(2)))
        return " "

    text = re.sub(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", grouping, text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if not m.group(2) and m.group(1) not in KEYWORDS:
            names.add(m.group(1))
    return names, labels


def test_the_tokenizer_reads_nested_promql():
    names, labels = parse(
        "histogram_quantile(0.99, sum by (route, le) (rate(recsys_request_seconds_bucket"
        '{job=~"$j",route!="/x{y}"}[$__rate_interval]))) / on (route) group_left '
        "max(up offset 5m) * 60"
    )
    assert names == {"recsys_request_seconds_bucket", "up"}
    assert labels == {"route", "le", "job"}


def test_it_is_a_valid_dashboard():
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    covered = []
    for panel in dashboard["panels"]:
        assert panel["title"], panel["id"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip()
        covered.append(panel["title"].lower())
    # what the issue asks the dashboard to show
    for subject in ("request rate", "p99", "errors", "replicas", "events ingested",
                    "messages sent", "segment entries", "model version"):  # fmt: skip
        assert any(subject in title for title in covered), subject


@pytest.fixture
def scraped(client, keys, store) -> dict[str, tuple[str, set[str]]]:
    """``sample name -> (family type, labels seen)`` of the real app's /metrics after traffic."""
    user = client.get("/v1/admin/model", headers=auth(keys["admin"])).json()["example_user_id"]
    assert client.get(f"/v1/users/{user}/recommendations", headers=auth(keys["read"])).is_success
    assert client.get("/metrics").status_code == 200  # starts the segment-change counter
    segment = {"id": "carts", "name": "Carts",
               "definition": {"type": "performed", "event_type": "add_to_cart",
                              "window": {"seconds": 3600}}}  # fmt: skip
    assert client.post("/v1/segments", json=segment, headers=auth(keys["marketer"])).is_success
    event = {"user_id": "u-new", "item_id": "i1", "event_type": "add_to_cart"}
    answer = client.post("/v1/events", json={"events": [event]}, headers=auth(keys["ingest"]))
    assert answer.json()["accepted"] == 1
    assert client.get("/v1/nope", headers=auth(keys["read"])).status_code == 404
    samples: dict[str, tuple[str, set[str]]] = {}
    values = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            samples.setdefault(family.name + suffix, (family.type, set()))
        for sample in family.samples:
            samples.setdefault(sample.name, (family.type, set()))[1].update(sample.labels)
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    # the new metrics count what the store holds
    assert values[("recsys_segment_changes_total", (("kind", "entry"),))] == 1
    assert values[("recsys_campaign_sends", (("status", "sent"),))] == 0
    return samples


def ray_definitions() -> list[tuple[str, re.Pattern]]:
    """``(type, name pattern)`` of every metric Ray Serve defines."""
    found = []
    for path in RAY_SERVE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if kind not in ("Counter", "Gauge", "Histogram"):
                continue
            arg = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "name"), None
            )  # fmt: skip
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                pattern = re.escape(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                pattern = "".join(
                    re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+"
                    for v in arg.values
                )
            else:
                continue
            found.append((kind.lower(), re.compile(pattern)))
    return found


def ray_exports(name: str, definitions) -> bool:
    base = name.removeprefix("ray_")
    for kind, pattern in definitions:
        for suffix in SUFFIXES[kind]:
            if base.endswith(suffix) and pattern.fullmatch(base[: len(base) - len(suffix)]):
                return True
    return False


def test_every_query_names_an_exported_metric(scraped):
    definitions = ray_definitions()
    assert ray_exports("ray_serve_num_http_requests_total", definitions)  # the f-string kind
    assert not ray_exports("ray_serve_num_http_requests", definitions)  # a counter needs _total
    service_names, ray_names = set(), set()
    for expr in queries(load_dashboard()):
        names, labels = parse(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            if name.startswith("ray_"):
                ray_names.add(name)
                assert ray_exports(name, definitions), f"Ray does not export {name} ({expr})"
                continue
            service_names.add(name)
            assert name in scraped, f"the service does not export {name} ({expr})"
            seen = scraped[name][1]
            if seen:  # a labelled metric with no series yet has no labels to check
                extra = labels - seen - SCRAPE_LABELS - {"le"}
                assert not extra, f"{name} has no label(s) {sorted(extra)} ({expr})"
    assert {"recsys_request_seconds_bucket", "recsys_segment_changes_total",
            "recsys_campaign_sends", "recsys_model_info"} <= service_names  # fmt: skip
    assert {"ray_serve_num_http_requests_total",
            "ray_serve_deployment_replica_healthy"} <= ray_names  # fmt: skip
