"""benchmarks/gpu_check.py runs with only what the bare GPU machines have (torch, numpy, pandas)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recsys.device import cuda_available

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
# absent from the GPU benchmark machines (or not needed there): importing any of them fails
BLOCKED = (
    "faiss ray mlflow fastapi starlette uvicorn pydantic pyarrow sqlalchemy psycopg typer yaml "
    "tqdm cudf"
).split()

RUN_BLOCKED = textwrap.dedent(
    """
    import importlib.abc, importlib.util, runpy, sys

    BLOCKED = set(sys.argv[1].split(","))
    attempts = []
    real_find_spec = importlib.util.find_spec

    def blocked(name):
        return name.partition(".")[0] in BLOCKED

    class Absent(importlib.abc.MetaPathFinder):  # `import x` fails as for a missing package
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    def find_spec(name, package=None):  # probes see the package as not installed
        return None if blocked(name) else real_find_spec(name, package)

    loaded = sorted(m for m in sys.modules if blocked(m))
    assert not loaded, f"already imported at start-up: {loaded}"
    sys.meta_path.insert(0, Absent())
    importlib.util.find_spec = find_spec
    sys.argv = sys.argv[2:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        print("blocked import attempts:", sorted(set(attempts)), file=sys.stderr)
    """
)


def load_script():
    """The script as a module (registered, as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_small_run_needs_no_server_dependencies(tmp_path):
    out = tmp_path / "gpu_check.json"
    args = ["--small", "--out", str(out), "--events", "4000", "--topk-sizes", "3000"]
    args += ["--batches", "1,8", "--train-configs", "default,bpr", "--segment-users", "6000"]
    done = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKED, ",".join(BLOCKED), str(SCRIPT), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)  # stdout is the JSON summary alone
    assert json.loads(out.read_text()) == summary
    assert summary["ok"] and summary["errors"] == {}
    assert set(summary["section_seconds"]) == {"device", "training", "parity", "segments", "topk"}
    assert summary["device"]["device"] == ("cuda" if cuda_available() else "cpu")

    training = summary["training"]
    assert [r["name"] for r in training["runs"]] == ["default", "bpr"]
    assert all(r["samples"] == 4000 and r["samples_per_second"] > 0 for r in training["runs"])
    assert all(r["ratio_to_bpr_baseline"] > 0 for r in training["runs"])
    assert {r["batch"] for r in training["baseline_bpr"]} == {
        r["batch_size"] for r in training["runs"]
    }

    parity = summary["parity"]
    assert parity["parity_ok"], parity
    assert len(parity["loss_curve"]["cpu"]) == parity["data"]["epochs"]

    topk = summary["topk"]
    assert topk["all_checks_ok"] and not topk["failed"] and not topk["skipped"]
    methods = {r["method"] for r in topk["results"]}
    assert {"baseline_torch_topk", "exact_topk", "torch_index_search"} <= methods
    cases = {(r["dtype"], r["batch"]) for r in topk["results"]}
    assert cases == {("fp16", 1), ("fp16", 8), ("fp32", 1), ("fp32", 8)}
    assert all(r["queries_per_second"] > 0 for r in topk["results"])
    assert topk["goal"]["best_queries_per_second"] > 0
    segments = summary["segments"]
    assert (segments["users"], segments["dim"], segments["iters"]) == (6000, 64, 20)
    run, cpu = segments["device_run"], segments["cpu_run"]
    assert run["users"] == 6000 and run["events"] == 6000 * 20 and 0 < run["buyers"] <= 6000
    for timing in (run, cpu):
        assert timing["aggregate_seconds"] > 0
        assert timing["kmeans_seconds"] > timing["kmeans_seeding_seconds"] > 0
        assert timing["total_seconds"] >= timing["kmeans_seconds"]
    assert run["one_iteration"]["assign_seconds"] > 0 and run["one_iteration"]["update_seconds"] > 0
    assert cpu["device"] == "cpu" and cpu["users"] == 6000 and cpu["subsample_of_full"] == 1.0
    assert cpu["total_seconds_scaled_to_full"] == pytest.approx(cpu["total_seconds"], abs=1e-3)
    assert segments["speedup_vs_cpu_scaled"] > 0
    parity = segments["parity"]
    assert parity["parity_ok"] and parity["aggregate_mismatched_fields"] == []
    assert parity["kmeans_label_agreement"] >= 0.99
    assert segments["goal"]["seconds"] == 2.0 and segments["goal"]["met"] is False  # --small
    assert "[gpu_check" in done.stderr  # progress goes to stderr


def test_a_failing_section_is_reported_and_the_others_run(monkeypatch, capsys):
    module = load_script()

    def broken(device, plan, deadline):
        raise RuntimeError("section exploded")

    monkeypatch.setattr(module, "parity_section", broken)
    code = module.main(["--small", "--sections", "device,parity"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and not summary["ok"]
    assert "section exploded" in summary["errors"]["parity"]
    assert summary["device"]["torch"]


def test_bad_arguments(capsys):
    module = load_script()
    with pytest.raises(SystemExit) as exc:
        module.main(["--small", "--sections", "device,gpu"])
    assert exc.value.code == 2
    assert "--sections: unknown ['gpu']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--small", "--batches", "1,0"])
    assert "positive integer" in capsys.readouterr().err


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_full_sizes_refuse_the_cpu(capsys):
    assert load_script().main([]) == 2
    assert "full sizes need a CUDA GPU" in capsys.readouterr().err


def test_segments_aggregation_matches_the_store_fold_and_rfm_scores():
    """The section's torch aggregation gives what the store's fold and rfm.rank_scores give."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_segments as seg
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from datetime import UTC, datetime

    import numpy as np
    import torch

    from recsys.segments import rfm
    from recsys.store.profile_aggregates import empty_state, fold

    users, categories = 300, 5
    events = seg.synthetic_events(users, 6000, categories, torch.device("cpu"), seed=3)
    events["value"] = events["value"].double().round(decimals=2).float()  # cents, as stored
    got = seg.aggregate(events, users, categories)

    states = [empty_state() for _ in range(users)]
    spend, seen = np.zeros(users), np.full(users, seg.NEVER)
    for u, ts, kind, cat, value in zip(*(t.tolist() for t in events.values()), strict=True):
        row = {
            "event_type": seg.EVENT_TYPES[kind],
            "timestamp": datetime.fromtimestamp(ts, UTC),
            "item_id": f"i{cat}",
            "value": value,
        }
        fold(states[u], row, f"c{cat}")
        spend[u] += value if kind == seg.PURCHASE else 0.0
        seen[u] = ts if seen[u] == seg.NEVER else min(seen[u], ts)
    for u, state in enumerate(states):
        for k, name in enumerate(seg.EVENT_TYPES):
            stamp = state["last_event"].get(name)
            want = int(datetime.fromisoformat(stamp).timestamp()) if stamp else seg.NEVER
            assert int(got["last_event"][u, k]) == want, (u, name)
        counts = state["category_purchases"]
        assert got["category_purchases"][u].tolist() == [counts.get(f"c{c}", 0) for c in range(5)]
        amounts = [state["category_spend"].get(f"c{c}", 0.0) for c in range(categories)]
        assert got["category_spend"][u].tolist() == pytest.approx(amounts)
        assert int(got["frequency"][u]) == sum(counts.values())
    assert got["monetary"].numpy() == pytest.approx(spend)
    assert got["first_seen"].tolist() == seen.tolist()
    assert (got["frequency"] > 0).sum() < users  # some customers never bought

    buyers = got["buyers"].numpy()
    last = got["last_event"][:, seg.PURCHASE].numpy()[buyers].astype(np.float64)
    now = datetime.fromtimestamp(seg.NOW, UTC)
    want, _ = rfm.batch_scores(last, got["frequency"].numpy()[buyers], spend[buyers], now)
    assert got["rfm"].numpy().tolist() == want.tolist()
