"""The notebooks: each .ipynb matches its jupytext .py; 01 and 02 run end to end on tiny data."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from recsys.registry import CHALLENGER, CHAMPION, Registry

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))  # the jupytext percent sources
TRAIN_AND_COMPARE = NOTEBOOKS / "01_train_and_compare.py"
SEGMENTS = NOTEBOOKS / "02_segments.py"
METRICS = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]

# Read back from the kernel after the notebook ran (appended to the executed copy only).
PROBE = """
import json, sys
print(json.dumps({
    "executable": sys.executable,
    "comparison": comparison.reset_index().to_dict("records"),
    "outcomes": [
        {"version": o.version, "promoted": o.promoted, "value": o.value,
         "champion_version": o.champion_version, "champion_value": o.champion_value,
         "baselines": o.baselines}
        for o in outcomes
    ],
    "mlflow_uri": MLFLOW_URI,
    "work": str(WORK),
}, default=float))
"""


def _cells(notebook) -> list[tuple[str, str, list]]:
    return [
        (cell.cell_type, cell.source.strip(), sorted(cell.metadata.get("tags", [])))
        for cell in notebook.cells
    ]


def test_notebook_sources_exist():
    assert TRAIN_AND_COMPARE in SOURCES and SEGMENTS in SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_ipynb_is_in_sync_with_its_py(source: Path):
    regenerate = f"regenerate it: .venv/bin/jupytext --to ipynb notebooks/{source.name}"
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing; {regenerate}"
    committed = nbformat.read(ipynb, as_version=4)
    nbformat.validate(committed)
    expected, actual = _cells(jupytext.read(source)), _cells(committed)
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        assert got == want, f"{ipynb.name} cell {index} differs from {source.name}; {regenerate}"
    assert len(actual) == len(expected), f"{ipynb.name} has other cells; {regenerate}"
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert committed.metadata["kernelspec"]["name"] == "python3"
    with_outputs = [i for i, c in enumerate(committed.cells) if c.get("outputs")]
    assert not with_outputs, f"{ipynb.name} is committed with outputs in cells {with_outputs}"


def _repo_footprint() -> set[str]:
    """What a notebook run could leave in the repository: notebooks/ and MLflow's default places."""
    found = {str(p.relative_to(ROOT)) for p in NOTEBOOKS.rglob("*") if "__pycache__" not in p.parts}
    for default in ("mlruns", "mlartifacts", "var/mlflow.db", "var/mlartifacts"):
        found |= {default} if (ROOT / default).exists() else set()
    return found


def _texts(cell) -> str:
    """Everything a cell showed, as text (streams, tables as plain text and HTML, errors)."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def _cell_showing(notebook, code: str):
    return next(cell for cell in notebook.cells if code in cell.source)


@pytest.fixture
def tiny_notebook_env(tmp_path, monkeypatch):
    """Tiny generated shop and a throwaway MLflow store, both under tmp_path."""
    store = tmp_path / "store"
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's scratch dir lands here
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.delenv("RECSYS_NOTEBOOK_DATA", raising=False)  # default: the generated shop
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return store


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_and_compare_runs_on_tiny_data(tiny_notebook_env, tmp_path):
    store = tiny_notebook_env
    before = _repo_footprint()
    notebook, report = _execute(TRAIN_AND_COMPARE, PROBE)

    # The kernel is this interpreter (the venv that runs pytest), not some other python3.
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve()

    # Nothing written into the repository; the store and its artefacts are in the temp dir.
    assert _repo_footprint() == before
    assert report["mlflow_uri"] == os.environ["RECSYS_MLFLOW_TRACKING_URI"]
    assert Path(report["work"]).parent == tmp_path
    assert (store / "mlflow.db").exists() and any((store / "mlartifacts").rglob("MLmodel"))
    assert (Path(report["work"]) / "comparison.png").stat().st_size > 0

    # The comparison: the three models, every metric finite and in [0, 1].
    comparison = {row["model"]: row for row in report["comparison"]}
    assert set(comparison) == {"pop", "ease", "default"}
    for name, row in comparison.items():
        assert row["n_eval_users"] > 0, name
        for metric in METRICS:
            assert math.isfinite(row[metric]) and 0.0 <= row[metric] <= 1.0, (name, metric)
    assert "image/png" in json.dumps([cell.get("outputs", []) for cell in notebook.cells])

    # The job evaluated the same split: its baselines and first default model agree with ours.
    first, second = report["outcomes"]
    for baseline in first["baselines"]:
        for metric in METRICS:
            assert baseline[metric] == pytest.approx(comparison[baseline["model"]][metric])
    assert first["value"] == pytest.approx(comparison["default"]["ndcg@20"], abs=1e-4)

    # Gating: the first run became champion; the second is challenger and champion only if better.
    assert first["promoted"] and first["champion_version"] is None
    assert second["champion_version"] == first["version"]
    assert second["champion_value"] == pytest.approx(first["value"])
    assert second["promoted"] == (second["value"] > first["value"])
    winner = second if second["promoted"] else first

    # The registry itself (read here, independently of the notebook) says the same.
    registry = Registry(report["mlflow_uri"], check=False)
    assert [row["version"] for row in registry.versions()] == [2, 1]
    assert str(registry.alias_version(CHALLENGER).version) == second["version"] == "2"
    assert str(registry.alias_version(CHAMPION).version) == winner["version"]

    # ... and so does what the notebook showed.
    shown = _texts(_cell_showing(notebook, "registry.versions()"))
    assert "champion" in shown and "challenger" in shown
    assert f"champion   = version {winner['version']}" in shown
    summaries = _texts(_cell_showing(notebook, "run_training("))
    assert "registered recsys version 1" in summaries
    assert "registered recsys version 2" in summaries
    verdict = "promoted to champion" if second["promoted"] else "NOT promoted"
    assert verdict in _texts(_cell_showing(notebook, "gating = "))


SEGMENTS_PROBE = """
import json
print(json.dumps({
    "summary": summary,
    "sizes": dict(zip(segments["id"], segments["size"])),
    "kinds": dict(zip(segments["id"], segments["kind"])),
    "heat_total": int(counts.to_numpy().sum()),
    "rfm_scored": len(rfm),
    "clusters": sorted(set(labels.tolist())),
    "k": state["k"],
    "points": len(points),
    "audience": audience.to_dict("records"),
    "category": TOP_CATEGORY,
    "figures": len(plt.get_fignums()),
    "work": str(WORK),
}, default=float))
"""


def _execute(source: Path, probe: str):
    """Run the notebook (cwd notebooks/, as in Jupyter) and then ``probe`` in its kernel."""
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )  # fmt: skip
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)  # raises CellExecutionError with the traceback
        cell = nbformat.v4.new_code_cell(probe)
        notebook.cells.append(cell)
        client.execute_cell(cell, len(notebook.cells) - 1)
    return notebook, json.loads(_texts(cell))


def _images(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_segments_runs_on_tiny_data_and_renders_its_plots(tiny_notebook_env, tmp_path):
    before = _repo_footprint()
    notebook, report = _execute(SEGMENTS, SEGMENTS_PROBE)
    assert _repo_footprint() == before
    assert Path(report["work"]).parent == tmp_path

    # The batch job ran over the generated customers: RFM, clusters and memberships.
    summary = report["summary"]
    assert summary["customers"] > 0 and summary["rfm_scored"] > 0 and summary["changes"] > 0
    assert summary["clusters"]["k"] == report["k"] >= 2

    # 1. Sizes: the four rule segments and the eleven RFM groups; the groups partition the
    # customers with a score.
    kinds = report["kinds"]
    assert sorted(kinds.values()).count("rule") == 4 and sorted(kinds.values()).count("rfm") == 11
    rfm_total = sum(size for sid, size in report["sizes"].items() if kinds[sid] == "rfm")
    assert rfm_total == report["rfm_scored"] == summary["rfm_scored"]
    assert all(0 <= size <= summary["customers"] for size in report["sizes"].values())
    assert any(size > 0 for sid, size in report["sizes"].items() if kinds[sid] == "rule")

    # 2. The heat map counts every scored customer once.
    assert report["heat_total"] == report["rfm_scored"]

    # 3. Every projected user has one of the k clusters.
    assert report["clusters"] == list(range(report["k"]))
    assert report["points"] == summary["clusters"]["users"]

    # 4. The affinity audience: the size asked, distinct customers, best first.
    scores = [row["score"] for row in report["audience"]]
    assert len(scores) == 15 and len({row["user_id"] for row in report["audience"]}) == 15
    assert scores == sorted(scores, reverse=True)

    # Each of the four sections rendered its plot (five panels in four figures).
    assert report["figures"] == 0  # inline backend: shown and closed at the end of each cell
    for code in ("ax.barh(segments", "RFM: {title}", "PCA (", "affinity(AUDIENCE"):
        assert _images(_cell_showing(notebook, code)) == 1, code
    assert report["category"] in _texts(_cell_showing(notebook, "affinity(AUDIENCE"))
