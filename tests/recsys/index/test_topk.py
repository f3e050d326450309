"""Exact top-k selection: block maxima, chunked scans, exclusions and the Triton kernels."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from recsys.device import cuda_available
from recsys.index.topk import block_size, exact_topk, merge_topk, topk_rows, triton_available

ROOT = Path(__file__).resolve().parents[3]


def gaussian(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize(
    ("b", "n", "k", "block"),
    [
        (3, 1000, 10, None),  # power-of-two blocks, ragged tail
        (5, 1037, 7, 32),  # explicit block, ragged tail
        (2, 4096, 1, 64),  # k = 1, no tail
        (4, 300, 10, 32),  # fewer blocks than k: plain torch.topk
        (2, 8, 10, None),  # k > n: clipped to n
    ],
)
def test_blocks_equal_torch_topk_without_ties(b, n, k, block):
    scores = gaussian(b, n)
    values, indices = topk_rows(scores, k, method="blocks", block=block)
    expected = torch.topk(scores, min(k, n), dim=1)
    assert torch.equal(values, expected.values)
    assert torch.equal(indices, expected.indices)


def test_ties_keep_the_score_set():
    scores = torch.randint(0, 6, (6, 5000), generator=torch.Generator().manual_seed(1)).float()
    values, indices = topk_rows(scores, 25, method="blocks", block=64)
    expected = torch.topk(scores, 25, dim=1).values
    assert torch.equal(values, expected)  # same scores, best first
    assert torch.equal(scores.gather(1, indices), values)  # ids point at those scores
    assert all(len(set(row)) == 25 for row in indices.tolist())  # no duplicates


def test_fp16_scores():
    scores = gaussian(4, 20_000, seed=2, dtype=torch.float16)
    values, indices = topk_rows(scores, 10, method="blocks")
    assert values.dtype == torch.float16
    assert torch.equal(values, torch.topk(scores, 10, dim=1).values)
    assert torch.equal(scores.gather(1, indices), values)


def test_block_size_is_a_bounded_power_of_two():
    for n, k in [(1, 1), (100, 10), (262_144, 10), (10**8, 1)]:
        size = block_size(n, k)
        assert 32 <= size <= 1024 and size & (size - 1) == 0
    assert block_size(1_000_000, 10) == 256


def test_merge_keeps_the_best():
    a = (torch.tensor([[5.0, 1.0]]), torch.tensor([[0, 1]]))
    b = (torch.tensor([[3.0, 2.0]]), torch.tensor([[7, 8]]))
    values, indices = merge_topk(*a, *b, 3)
    assert values.tolist() == [[5.0, 3.0, 2.0]] and indices.tolist() == [[0, 7, 8]]


@pytest.mark.parametrize("method", ["torch", "blocks"])
def test_exact_topk_chunked_with_exclusions(method):
    items, queries = gaussian(3000, 8, seed=3), gaussian(6, 8, seed=4)
    scores = queries @ items.T
    shared = torch.arange(0, 3000, 7)  # excluded for every query
    rows = torch.tensor([0, 0, 2, 5, 5, 5])  # per-query exclusions
    cols = torch.tensor([11, 2999, 400, 0, 1, 2])
    for rows_t, cols_t in [(None, shared), (rows, cols)]:
        masked = scores.clone()
        if rows_t is None:
            masked[:, cols_t] = float("-inf")
        else:
            masked[rows_t, cols_t] = float("-inf")
        expected = torch.topk(masked, 15, dim=1)
        values, indices = exact_topk(
            queries, items, 15, method=method, exclude=(rows_t, cols_t), max_score_elements=6 * 450
        )
        assert values.dtype == torch.float32 and indices.dtype == torch.int64
        assert torch.equal(indices, expected.indices)
        torch.testing.assert_close(values, expected.values)


def test_exclusions_leave_short_rows_at_minus_infinity():
    items, queries = gaussian(20, 4, seed=5), gaussian(2, 4, seed=6)
    values, indices = exact_topk(queries, items, 10, exclude=(None, torch.arange(15)))
    assert torch.isfinite(values[:, :5]).all() and torch.isneginf(values[:, 5:]).all()
    assert (indices[:, :5] >= 15).all()


def test_bad_arguments_name_the_problem():
    items = gaussian(10, 4)
    with pytest.raises(ValueError, match="method must be one of"):
        exact_topk(gaussian(1, 4), items, 3, method="fast")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        exact_topk(gaussian(1, 4), items, 0)
    with pytest.raises(ValueError, match="must agree"):
        exact_topk(gaussian(1, 5), items, 3)
    with pytest.raises(ValueError, match="at least one item"):
        exact_topk(gaussian(1, 4), items[:0], 3)
    with pytest.raises(ValueError, match="2-D"):
        topk_rows(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="'auto', 'torch' or 'blocks'"):
        topk_rows(torch.zeros(1, 5), 2, method="triton")
    with pytest.raises(ValueError, match="does not support exclude"):
        exact_topk(gaussian(1, 4), items, 3, method="triton", exclude=(None, torch.tensor([1])))


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is not None, reason="Triton is installed here"
)
def test_triton_method_without_triton_says_so():
    with pytest.raises(RuntimeError, match="needs Triton"):
        exact_topk(gaussian(1, 4), gaussian(10, 4).half(), 3, method="triton")


TRITON_CHECK = textwrap.dedent(
    """
    import torch
    from recsys.index.topk import exact_topk

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(0)
    for n, b, dim, dtype in [(1000, 3, 24, torch.float16), (1200, 40, 64, torch.float16),
                             (300, 1, 16, torch.bfloat16), (5, 2, 8, torch.float16)]:
        items = torch.randn(n, dim, generator=gen).to(device, dtype)
        queries = torch.randn(b, dim, generator=gen).to(device, dtype)
        values, indices = exact_topk(queries, items, 10, method="triton")
        expected = torch.topk(queries.float() @ items.float().T, min(10, n), dim=1)
        torch.testing.assert_close(values, expected.values, rtol=1e-5, atol=1e-5)
        assert torch.equal(indices, expected.indices), (n, b)
    print("triton ok")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_triton_kernels_match_fp32_reference():
    """On CUDA for real; without a GPU under Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    if not cuda_available():
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "triton ok" in done.stdout


@pytest.mark.skipif(not cuda_available(), reason="CUDA is not available to torch on this machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_matches_cpu(dtype):
    items, queries = (
        gaussian(50_000, 64, seed=7, dtype=dtype),
        gaussian(33, 64, seed=8, dtype=dtype),
    )
    reference = torch.topk(queries.float() @ items.float().T, 10, dim=1)
    for method in ("auto", "blocks", "torch") + (("triton",) if triton_available() else ()):
        if method == "triton" and dtype == torch.float32:
            continue
        values, indices = exact_topk(queries.cuda(), items.cuda(), 10, method=method)
        tol = 2e-3 * reference.values.abs().max().item() if dtype == torch.float16 else 1e-4
        torch.testing.assert_close(values.cpu(), reference.values, rtol=0, atol=tol)
