"""The fused Triton path of ``exact_topk(method="triton")``: no score matrix is ever written.

1. ``block_max`` -- one program per block of ``BLOCK_N`` items computes the scores of every query
   against the block on the tensor cores (fp16/bf16 inputs, fp32 accumulation) and keeps only
   each query's maximum: a (n_blocks, queries) fp32 matrix, ``BLOCK_N`` times smaller than the
   scores;
2. ``torch.topk`` picks each query's ``k`` blocks with the largest maxima;
3. ``rescore`` recomputes the scores of those ``k * BLOCK_N`` candidates in fp32;
4. ``torch.topk`` over the candidates gives the exact top-k (see ``recsys.index.topk``).

Triton is imported on first use only, so machines without it import the package fine. The kernels
run under Triton's CPU interpreter (``TRITON_INTERPRET=1``), which is how the tests check them
without a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BLOCK_N = 128
MAX_DIM = 256
MAX_QUERIES = 4096  # queries per kernel launch (bounds the maxima and candidate buffers)


def interpreting() -> bool:
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def block_max(
        q_ptr, x_ptr, out_ptr, n_queries, n_items, dim, stride_q, stride_x, stride_out,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        # the block's items are read from memory once; the (small) queries BLOCK_M at a time
        block = tl.program_id(0)
        rn = (block * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)  # n * dim may pass 2**31
        rd = tl.arange(0, BLOCK_D)
        xt = tl.load(  # (BLOCK_D, BLOCK_N): the block's items, transposed
            x_ptr + rn[None, :] * stride_x + rd[:, None],
            mask=(rn[None, :] < n_items) & (rd[:, None] < dim),
            other=0.0,
        )
        for m0 in range(0, n_queries, BLOCK_M):
            rm = m0 + tl.arange(0, BLOCK_M)
            q = tl.load(
                q_ptr + rm[:, None] * stride_q + rd[None, :],
                mask=(rm[:, None] < n_queries) & (rd[None, :] < dim),
                other=0.0,
            )
            scores = tl.dot(q, xt)  # (BLOCK_M, BLOCK_N), fp32 accumulation
            scores = tl.where(rn[None, :] < n_items, scores, float("-inf"))
            best = tl.max(scores, axis=1)
            tl.store(out_ptr + block.to(tl.int64) * stride_out + rm, best, mask=rm < n_queries)

    @triton.jit
    def rescore(
        q_ptr, x_ptr, blocks_ptr, out_ptr, n_items, dim, n_chosen, stride_q, stride_x,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        # out[query, j * BLOCK_N + i] = fp32 score of item i of the query's j-th chosen block
        row = tl.program_id(0)
        j = tl.program_id(1)
        block = tl.load(blocks_ptr + row * n_chosen + j)
        rn = block * BLOCK_N + tl.arange(0, BLOCK_N)
        rd = tl.arange(0, BLOCK_D)
        x = tl.load(
            x_ptr + rn[:, None] * stride_x + rd[None, :],
            mask=(rn[:, None] < n_items) & (rd[None, :] < dim),
            other=0.0,
        ).to(tl.float32)
        q = tl.load(q_ptr + row * stride_q + rd, mask=rd < dim, other=0.0).to(tl.float32)
        scores = tl.sum(x * q[None, :], axis=1)
        scores = tl.where(rn < n_items, scores, float("-inf"))
        out = out_ptr + (row.to(tl.int64) * n_chosen + j) * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(out, scores)

    return triton, block_max, rescore


def triton_topk(q: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` of ``q @ items.T`` (same dtype and device) as (fp32 values, int64 rows).

    Raises ``RuntimeError`` where it cannot run: no Triton, no CUDA (unless interpreting), items
    not fp16/bf16, or ``dim > 256``.
    """
    if importlib.util.find_spec("triton") is None:
        raise RuntimeError("exact_topk method='triton' needs Triton, which is not installed")
    if items.device.type != "cuda" and not interpreting():
        raise RuntimeError(f"exact_topk method='triton' needs a CUDA device, got {items.device}")
    if items.dtype not in (torch.float16, torch.bfloat16):
        raise RuntimeError(f"exact_topk method='triton' needs fp16/bf16 items, got {items.dtype}")
    n, dim = items.shape
    if dim > MAX_DIM:
        raise RuntimeError(f"exact_topk method='triton' supports dim <= {MAX_DIM}, got {dim}")
    if q.shape[0] > MAX_QUERIES:
        parts = [triton_topk(part, items, k) for part in q.split(MAX_QUERIES)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    triton, block_max, rescore = _kernels()
    b, k = q.shape[0], min(int(k), n)
    items, q = items.contiguous(), q.contiguous()
    n_blocks = triton.cdiv(n, BLOCK_N)
    block_d = max(16, triton.next_power_of_2(dim))
    block_m = min(128, max(16, triton.next_power_of_2(b)))
    maxima = torch.empty((n_blocks, b), dtype=torch.float32, device=items.device)
    block_max[(n_blocks,)](
        q, items, maxima, b, n, dim, q.stride(0), items.stride(0), maxima.stride(0),
        BLOCK_M=block_m, BLOCK_N=BLOCK_N, BLOCK_D=block_d, num_warps=8 if block_m > 64 else 4,
    )  # fmt: skip
    n_chosen = min(k, n_blocks)
    chosen = torch.topk(maxima.T, n_chosen, dim=1, sorted=False).indices.contiguous()
    scores = torch.empty((b, n_chosen * BLOCK_N), dtype=torch.float32, device=items.device)
    rescore[(b, n_chosen)](
        q, items, chosen, scores, n, dim, n_chosen, q.stride(0), items.stride(0),
        BLOCK_N=BLOCK_N, BLOCK_D=block_d,
    )  # fmt: skip
    values, positions = torch.topk(scores, k, dim=1)
    rows = chosen.gather(1, positions // BLOCK_N) * BLOCK_N + positions % BLOCK_N
    return values, rows
