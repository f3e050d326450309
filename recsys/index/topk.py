"""Exact top-k inner-product search in torch: block-maximum selection and an optional Triton kernel.

``torch.topk`` over a wide (queries x items) score matrix is limited on CUDA by its per-row radix
selection, not by the matmul. ``topk_rows`` selects exactly in three cheap steps:

1. the maximum of every block of ``block`` consecutive columns (one bandwidth-bound pass);
2. per row, the ``k`` blocks with the largest maxima (``torch.topk`` over ``n / block`` values);
3. ``torch.topk`` over the ``k * block`` scores of those blocks (plus a ragged tail).

Why it is exact: let ``t`` be the smallest maximum among the chosen blocks. Every score above ``t``
lies in a chosen block (any other block's maximum is <= ``t``), and the chosen blocks hold at least
``k`` scores >= ``t``; so the chosen blocks contain a top-k with the same scores as the full row
(ties may pick other columns of equal score, as ``torch.topk`` itself may).

``exact_topk`` scores queries against an item matrix in item chunks (bounded memory), masks
exclusions and merges the chunks' top-k. ``method="triton"`` (``recsys.index.topk_triton``: CUDA,
fp16/bf16 items) fuses the matmul with step 1, so the score matrix is never written; it is
optional and only used when asked for.
"""

from __future__ import annotations

import importlib.util
import math

import torch

METHODS = ("auto", "torch", "blocks", "triton")


def block_size(n: int, k: int) -> int:
    """Columns per block for ``topk_rows``: a power of two near ``sqrt(n / k)``, in [32, 1024]."""
    ideal = math.sqrt(max(n, 1) / max(k, 1))
    return int(min(1024, max(32, 2 ** round(math.log2(max(ideal, 1.0))))))


def topk_rows(
    scores: torch.Tensor, k: int, *, method: str = "auto", block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` of each row of a (b, n) score matrix, best first.

    Parameters
    ----------
    scores : torch.Tensor, shape (b, n)
        Any floating dtype, on any device.
    k : int
        Results per row (clipped to ``n``).
    method : {"auto", "torch", "blocks"}
        ``"torch"`` is ``torch.topk``; ``"blocks"`` the block-maximum selection of the module
        docstring; ``"auto"`` uses blocks on CUDA when the row is wide enough to gain, else
        ``torch.topk`` (which is faster on the CPU).
    block : int, optional
        Columns per block (default ``block_size(n, k)``).

    Returns
    -------
    values : torch.Tensor, shape (b, min(k, n))
        In the dtype of ``scores``.
    indices : torch.Tensor of int64, shape (b, min(k, n))
    """
    if method not in ("auto", "torch", "blocks"):
        raise ValueError(f"topk_rows method must be 'auto', 'torch' or 'blocks', got {method!r}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (queries, items), got shape {tuple(scores.shape)}")
    b, n = scores.shape
    k = min(int(k), n)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    block = block or block_size(n, k)
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    n_blocks = n // block
    if method == "auto":
        method = "blocks" if scores.is_cuda and n_blocks >= 4 * k else "torch"
    if method == "torch" or n_blocks <= k:  # too few blocks to prune anything
        return torch.topk(scores, k, dim=1)
    full = n_blocks * block
    blocks = scores[:, :full].reshape(b, n_blocks, block)  # a view: rows stay contiguous
    chosen = torch.topk(blocks.amax(dim=2), k, dim=1, sorted=False).indices  # (b, k)
    candidates = blocks.gather(1, chosen[:, :, None].expand(b, k, block)).reshape(b, k * block)
    offsets = torch.arange(block, device=scores.device)
    columns = (chosen[:, :, None] * block + offsets).reshape(b, k * block)
    if full < n:  # the ragged tail is always a candidate
        candidates = torch.cat([candidates, scores[:, full:]], dim=1)
        tail = torch.arange(full, n, device=scores.device).expand(b, n - full)
        columns = torch.cat([columns, tail], dim=1)
    values, positions = torch.topk(candidates, k, dim=1)
    return values, columns.gather(1, positions)


def merge_topk(values_a, indices_a, values_b, indices_b, k: int):
    """The best ``k`` of two (b, ka) and (b, kb) top-k results, best first."""
    values = torch.cat([values_a, values_b], dim=1)
    order = torch.topk(values, min(k, values.shape[1]), dim=1).indices
    return values.gather(1, order), torch.cat([indices_a, indices_b], dim=1).gather(1, order)


def default_max_score_elements(device: torch.device) -> int:
    """Score elements computed at once: 2**28 on CUDA (512 MiB in fp16), 2**25 on the CPU."""
    return 1 << 28 if device.type == "cuda" else 1 << 25


def exact_topk(
    queries: torch.Tensor,
    items: torch.Tensor,
    k: int,
    *,
    method: str = "auto",
    exclude: tuple[torch.Tensor | None, torch.Tensor] | None = None,
    max_score_elements: int | None = None,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` items by inner product for each query.

    Parameters
    ----------
    queries : torch.Tensor, shape (b, dim)
        Cast to the dtype and device of ``items``.
    items : torch.Tensor, shape (n, dim)
        The item matrix (fp32, fp16 or bf16).
    k : int
        Results per query (clipped to ``n``).
    method : {"auto", "torch", "blocks", "triton"}
        Row selection (see ``topk_rows``); ``"triton"`` is the fused CUDA kernel (fp16/bf16
        items, ``dim <= 256``, no ``exclude``) and raises ``RuntimeError`` where it cannot run.
    exclude : (rows, cols), optional
        Item positions ``cols`` scored ``-inf``, for the queries ``rows`` (``rows=None``: every
        query). Excluded items appear only when fewer than ``k`` items remain, with ``-inf``.
    max_score_elements : int, optional
        Bound on the (queries x items) block scored at once; default
        ``default_max_score_elements(items.device)``.
    block : int, optional
        Block width of the block-maximum selection.

    Returns
    -------
    values : torch.Tensor of float32, shape (b, min(k, n))
    indices : torch.Tensor of int64, shape (b, min(k, n))
        Rows of ``items``, best first.
    """
    if method not in METHODS:
        raise ValueError(f"exact_topk method must be one of {METHODS}, got {method!r}")
    if queries.dim() != 2 or items.dim() != 2 or queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"queries (b, dim) and items (n, dim) must agree, got {tuple(queries.shape)} "
            f"and {tuple(items.shape)}"
        )
    if items.shape[0] == 0:
        raise ValueError("exact_topk needs at least one item")
    if isinstance(k, bool) or int(k) <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    q = queries.to(device=items.device, dtype=items.dtype)
    if method == "triton":
        if exclude is not None:
            raise ValueError("exact_topk method='triton' does not support exclude")
        from recsys.index.topk_triton import triton_topk  # Triton is optional

        return triton_topk(q, items, k)
    limit = max_score_elements or default_max_score_elements(items.device)
    n, b = items.shape[0], q.shape[0]
    chunk = max(1, limit // max(b, 1))
    rows, cols = exclude if exclude is not None else (None, None)
    best = None
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = q @ items[start:stop].T
        if cols is not None and len(cols):
            inside = (cols >= start) & (cols < stop)
            if rows is None:
                scores[:, cols[inside] - start] = float("-inf")
            else:
                scores[rows[inside], cols[inside] - start] = float("-inf")
        values, indices = topk_rows(scores, min(k, stop - start), method=method, block=block)
        indices += start
        best = (values, indices) if best is None else merge_topk(*best, values, indices, k)
    return best[0].float(), best[1]


def triton_available(device: torch.device | str = "cuda") -> bool:
    """Whether ``exact_topk(method="triton")`` can run on ``device`` (Triton and CUDA present)."""
    return torch.device(device).type == "cuda" and importlib.util.find_spec("triton") is not None
