"""Latent-class refinement of the embedding clusters over the customers' stored histories.

k-means on the taste vectors (:mod:`recsys.segments.clusters`) draws straight boundaries in the
embedding space, where a customer with five events and one with fifty weigh the same. A
mixture model over what each customer did places the boundaries by evidence instead. Cluster
``z`` has a share ``pi_z``; a distribution ``theta_z`` over the categories a session visits
(each category once per session: a long browse of one category is one choice, not twenty); per
category, a distribution ``w_z`` over its items (which items the cluster picks within it); and a
von Mises-Fisher vote of the taste vector around the cluster's mean direction ``mu_z``; and,
per categorical customer attribute the shop sends (country, age band, tier, ...), a
distribution ``a_z`` over its values::

    log P(customer | z) = sum_sessions,categories log theta_z[c]
                        + sum_items log w_z[item | category]
                        + CONCENTRATION * x . mu_z
                        + sum_attributes log a_z[value] + log pi_z

EM starts from the k-means labels and stops when fewer than ``tol`` of the customers change
cluster. Torch only (sparse CSR products), so it runs where the tensors are: on the GPU when
there is one. The priors and the concentration were chosen on synthetic shops of seeds 11 and
13 (``benchmarks/clusters.py``), not on the reported seed 7.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)

CATEGORY_PRIOR = 0.5  # pseudo-sessions per category and cluster (Dirichlet smoothing)
ITEM_PRIOR = 2.0  # pseudo-picks per item and cluster: ~7 picks per item and cluster at 3k users
CONCENTRATION = 20.0  # weight of the taste vector's vote (vMF concentration; unit vectors)
ATTRIBUTE_PRIOR = 1.0  # pseudo-customers per attribute value and cluster
MAX_ATTRIBUTE_VALUES = 50  # attributes with more values (dates, ids) say little about taste
ITERATIONS = 30  # converges in 10-20 on the synthetic shops
TOLERANCE = 1e-4  # share of customers changing cluster below which EM stops


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], device) -> torch.Tensor:
    """A float32 CSR matrix with a 1 at every ``(row, col)`` (repeats add up in products)."""
    index = np.int32 if len(rows) < 2**31 and max(shape) < 2**31 else np.int64  # half the memory
    order = np.argsort(rows, kind="stable")
    crow = np.zeros(shape[0] + 1, dtype=index)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow),
            torch.from_numpy(cols[order].astype(index)),
            torch.ones(len(rows), dtype=torch.float32),
            size=shape,
        ).to(device)


@dataclass
class Evidence:
    """What the customers did, as count matrices (rows: customers in clustering order)."""

    sessions: torch.Tensor  # (customers, categories) CSR: sessions that visited the category
    sessions_t: torch.Tensor  # its transpose, CSR
    items: torch.Tensor  # (customers, items) CSR: items of the stored history
    items_t: torch.Tensor
    item_category: torch.Tensor  # (items,) int64
    attributes: list[torch.Tensor] = field(default_factory=list)  # (customers,) codes, 0: none

    @classmethod
    def from_pairs(
        cls,
        n_customers: int,
        session_pairs: tuple[np.ndarray, np.ndarray],
        item_pairs: tuple[np.ndarray, np.ndarray],
        item_category: np.ndarray,
        attributes: Sequence[np.ndarray] = (),
        device="cpu",
    ) -> Evidence:
        """From ``(customer, category)`` per session visit and ``(customer, item)`` per history
        entry (customer = row of the clustering), and per attribute a code for every customer
        (0 when it has none)."""
        n_items, n_categories = len(item_category), int(item_category.max()) + 1
        (su, sc), (iu, ii) = session_pairs, item_pairs
        return cls(
            sessions=_csr(su, sc, (n_customers, n_categories), device),
            sessions_t=_csr(sc, su, (n_categories, n_customers), device),
            items=_csr(iu, ii, (n_customers, n_items), device),
            items_t=_csr(ii, iu, (n_items, n_customers), device),
            item_category=torch.from_numpy(item_category.astype(np.int64)).to(device),
            attributes=[
                torch.from_numpy(np.asarray(c, dtype=np.int64)).to(device) for c in attributes
            ],
        )

    @property
    def n_categories(self) -> int:
        return self.sessions.shape[1]


def loglik(evidence: Evidence, x: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
    """``(customers, k)`` log P(customer | cluster) + log share, with the clusters' parameters
    estimated from the responsibilities ``resp`` (M step, then E step)."""
    n, k = resp.shape
    share = (resp.sum(0) + 1.0) / (n + k)
    theta = evidence.sessions_t @ resp + CATEGORY_PRIOR  # (categories, k)
    theta = theta / theta.sum(0, keepdim=True)
    weight = evidence.items_t @ resp + ITEM_PRIOR  # (items, k)
    totals = torch.zeros(evidence.n_categories, k, device=x.device)
    totals.index_add_(0, evidence.item_category, weight)
    weight = weight / totals[evidence.item_category]
    direction = resp.T @ x
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    scores = (
        evidence.sessions @ theta.log()
        + evidence.items @ weight.log()
        + CONCENTRATION * (x @ direction.T)
        + share.log()
    )
    for codes in evidence.attributes:
        counts = torch.zeros(int(codes.max()) + 1, k, device=x.device).index_add_(0, codes, resp)
        counts[1:] += ATTRIBUTE_PRIOR
        log_p = (counts / counts[1:].sum(0, keepdim=True)).log()
        log_p[0] = 0.0  # a customer without the attribute: no evidence either way
        scores += log_p[codes]
    return scores


def refine(
    evidence: Evidence,
    x: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    iters: int = ITERATIONS,
    tol: float = TOLERANCE,
) -> torch.Tensor:
    """EM from ``labels`` (k-means, ``0 .. k-1``) over ``evidence`` and the unit taste vectors
    ``x``; returns each customer's most likely cluster (some may end empty)."""
    resp = torch.nn.functional.one_hot(labels.to(x.device), k).to(x.dtype)
    labels = labels.to(x.device)
    for step in range(iters):
        scores = loglik(evidence, x, resp)
        new = scores.argmax(1)
        changed = float((new != labels).float().mean())
        resp, labels = torch.softmax(scores, dim=1), new
        logger.debug("mixture step %d: %.4f of the customers changed cluster", step + 1, changed)
        if changed < tol:
            break
    logger.info("mixture: %d EM steps, last moved %.4f of %d customers", step + 1, changed, len(x))
    return labels
