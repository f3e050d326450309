"""How well could *any* classifier recover the planted taste segments? (the ceiling for ARI 0.8)

Generates the same shop as ``clusters.py`` and rebuilds the generator's true parameters from the
same seed streams (``build_catalogue``, ``build_segments``). Every customer is then put in the
segment of highest posterior probability under the generative model itself: segment share as
prior, the events that carry taste (browsing views and the first purchase of each staple; carts,
purchases and removals only follow views, cross-sell views follow the planted complement) scored
with the segment's category preference and within-category item weights, optionally times the
``age_band`` likelihood. A customer's category preference is ``0.85 * segment + 0.15 * personal``
with personal ~ Dirichlet(0.3), which the variants handle increasingly faithfully:

* ``naive_iid``: every view an independent draw from the mean preference (personal part
  replaced by its mean, 1 / categories); cross-sell and staple views counted like the others.
* ``clean_iid``: as above, on taste-carrying events only (staples once, cross-sell dropped).
* ``session_intent``: each session's intent category is one draw, its views 70 % intent and
  30 % fresh draws (summed over the intent exactly), still with the mean preference.
* ``session_personal``: intent fixed at its most likely category, and the personal Dirichlet
  part marginalised exactly (a polynomial expansion of ``(0.85 p + 0.15 q) ** n``).

``reference_known_taste`` is no classifier: it scores ``session_intent`` with every customer's
*actual* category preference (redrawn from the users' seed stream), an upper bound beyond the
oracle. Prints ARI and accuracy (share put in their own segment) overall and by activity.

    .venv/bin/python benchmarks/clusters_oracle.py --users 3000 --items 800 --seed 7
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import gammaln, logsumexp

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the modules next to this script
    sys.path.insert(0, str(HERE))

from clusters import adjusted_rand  # noqa: E402

from recsys.data.frame import pd  # noqa: E402
from recsys.synth import ShopConfig, generate_shop  # noqa: E402
from recsys.synth.catalogue import build_catalogue  # noqa: E402
from recsys.synth.config import STREAM_USERS, rng_for  # noqa: E402
from recsys.synth.customers import (  # noqa: E402
    AGE_BANDS,
    SEGMENT_WEIGHT,
    block_bounds,
    build_segments,
    draw_customers,
)
from recsys.synth.sessions import INTENT_SHARE  # noqa: E402

PERSONAL_ALPHA = 0.3  # Dirichlet alpha of a customer's personal category preferences (customers.py)
BUCKETS = (1, 10, 20, 40)


def within_category_logp(segments, catalogue) -> np.ndarray:
    """(K, items) log P(item | category, segment), read back from the segment item sampler."""
    k, n_items = segments.n_segments, catalogue.n_items
    n_cat = catalogue.n_categories
    offset = np.arange(k)[:, None] * n_cat + catalogue.item_category[None, :]
    share = segments.item_sampler._cdf.reshape(k, n_items) - offset  # cumulative, per category
    prev = np.concatenate([np.zeros((k, 1)), share[:, :-1]], axis=1)
    prev[:, catalogue.category_start[:-1]] = 0.0
    return np.log(np.maximum(share - prev, 1e-300))


def load_events(shop: Path, catalogue, users: pd.Index) -> dict:
    """Events in session order with internal indices, and which views carry taste."""
    ev = pd.read_parquet(
        shop / "events.parquet",
        columns=["user_id", "item_id", "event_type", "session_id", "timestamp"],
    )
    ev = ev.sort_values(["session_id", "timestamp"], kind="stable").reset_index(drop=True)
    item_index = pd.Index(np.asarray(catalogue.item_ids.to_pylist()))
    item = item_index.get_indexer(ev["item_id"])
    user = users.get_indexer(ev["user_id"])
    assert (item >= 0).all() and (user >= 0).all()
    sess = pd.factorize(ev["session_id"])[0]
    etype = ev["event_type"].to_numpy()
    view, cart, buy = etype == "view", etype == "add_to_cart", etype == "purchase"
    same_prev = np.r_[False, sess[1:] == sess[:-1]]
    same_next = np.r_[sess[:-1] == sess[1:], False]
    prev_item, next_item = np.r_[-1, item[:-1]], np.r_[item[1:], -1]
    prev_cart, next_cart = np.r_[False, cart[:-1]], np.r_[cart[1:], False]
    # Cross-sell: the bought anchor's complement is viewed and carted right after the anchor.
    partner = np.where(prev_item >= 0, catalogue.complement[np.maximum(prev_item, 0)], -1)
    cross = view & same_prev & prev_cart & (partner == item) & same_next & next_cart
    cross &= next_item == item
    # Staple re-buy: viewed and carted before any browsing, always bought in that session.
    bought = pd.Index(sess[buy].astype(np.int64) * catalogue.n_items + item[buy])
    is_bought = bought.get_indexer(sess.astype(np.int64) * catalogue.n_items + item) >= 0
    consumable = catalogue.consumable[catalogue.item_category[item]]
    staple = view & ~same_prev & same_next & next_cart & (next_item == item) & consumable
    staple &= is_bought
    browse = view & ~cross & ~staple
    return {
        "user": user,
        "item": item,
        "session": sess,
        "view": view,
        "browse": browse,
        "staple": staple,
        "events_per_user": np.bincount(user, minlength=len(users)),
    }


def count_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    data = np.ones(len(rows))
    return sparse.csr_matrix((data, (rows, cols)), shape=shape)


def session_loglik(counts: sparse.csr_matrix, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sessions, K) log P(categories of each session's views) and each session's likeliest intent.

    ``counts`` is (sessions, C) browsing views per category, ``theta`` the category preference,
    (K, C) or per session (sessions, K, C). Intent c ~ theta; a view stays in c with probability
    0.7 and is otherwise a fresh draw from theta: P = sum_c theta_c prod_v (0.7 [c_v = c] +
    0.3 theta_{c_v}).
    """
    dense = counts.toarray()[:, None, :]  # (S, 1, C)
    log_theta = np.log(theta)
    wander = np.log(1.0 - INTENT_SHARE) + log_theta
    stay = np.log(INTENT_SHARE + (1.0 - INTENT_SHARE) * theta)
    base = (dense * wander).sum(axis=2, keepdims=True)  # every view a fresh draw
    per_intent = base + dense * (stay - wander) + log_theta  # (S, K, C)
    return logsumexp(per_intent, axis=2), per_intent.argmax(axis=2)


def personal_marginal(n: np.ndarray, log_p: np.ndarray, n_cat: int) -> float:
    """log E_q prod_c (a p_c + b q_c) ** n_c over q ~ Dirichlet(alpha) on n_cat categories.

    Exact: expand each factor binomially; E_q prod q_c ** j_c = Gamma(C alpha) / Gamma(C alpha +
    J) prod Gamma(alpha + j_c) / Gamma(alpha) depends on the j_c only through J = sum j_c beyond
    the per-category factors, so the sum is a product of polynomials in x ** J.
    ``n``: draws per category (only categories drawn), ``log_p``: log p_c of those.
    """
    a, b, alpha = SEGMENT_WEIGHT, 1.0 - SEGMENT_WEIGHT, PERSONAL_ALPHA
    poly, scale = np.ones(1), 0.0  # coefficients of x ** J, times exp(scale)
    for n_c, lp in zip(n, log_p, strict=True):
        j = np.arange(n_c + 1)
        log_coef = (
            gammaln(n_c + 1) - gammaln(j + 1) - gammaln(n_c - j + 1)
            + (n_c - j) * (np.log(a) + lp) + gammaln(alpha + j) - gammaln(alpha)
        )  # fmt: skip
        top = log_coef.max()
        poly = np.convolve(poly, np.exp(log_coef - top))
        peak = poly.max()
        poly /= peak
        scale += top + np.log(peak)
    big_j = np.arange(len(poly))
    rising = gammaln(n_cat * alpha + big_j) - gammaln(n_cat * alpha)
    with np.errstate(divide="ignore"):
        terms = np.log(poly) + big_j * np.log(b) - rising
    return scale + float(logsumexp(terms))


def personal_tastes(config: ShopConfig, segments, planted: np.ndarray) -> np.ndarray:
    """(users, C) every customer's personal category preference, redrawn from the seed stream."""
    out = []
    for block in range(config.n_blocks):
        first, n = block_bounds(config, block)
        customers = draw_customers(segments, first, n, rng_for(config.seed, STREAM_USERS, block))
        assert (customers.segment == planted[first : first + n]).all()
        theta = np.diff(customers.category_cdf, axis=1, prepend=0.0)
        mixed = SEGMENT_WEIGHT * segments.category_preference[customers.segment]
        out.append(np.maximum((theta - mixed) / (1.0 - SEGMENT_WEIGHT), 1e-12))
    personal = np.concatenate(out)
    return personal / personal.sum(axis=1, keepdims=True)


def scores(labels: np.ndarray, planted: np.ndarray, events: np.ndarray) -> dict:
    """ARI and accuracy, overall and by events per customer."""
    out = {"ari": {}, "accuracy": {}}
    for low in BUCKETS:
        keep = events >= low
        if keep.sum() > 1:
            name = "all" if low == 1 else f">={low} events"
            out["ari"][name] = round(adjusted_rand(planted[keep], labels[keep]), 4)
            out["accuracy"][name] = round(float((labels[keep] == planted[keep]).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--events-per-user", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = ShopConfig(
        users=args.users, items=args.items, seed=args.seed, events_per_user=args.events_per_user
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        shop = Path(tmp) / "shop"
        generate_shop(config, shop)
        truth = pd.read_parquet(shop / "truth" / "user_segments.parquet")
        users = pd.read_parquet(shop / "users.parquet", columns=["user_id", "attributes"])
        catalogue = build_catalogue(config)
        segments = build_segments(config, catalogue)
        users_index = pd.Index(truth["user_id"])
        ev = load_events(shop, catalogue, users_index)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    planted = truth["segment"].to_numpy()
    n_users, n_items, n_cat = len(truth), catalogue.n_items, catalogue.n_categories
    k = segments.n_segments
    item_cat = catalogue.item_category
    log_w = within_category_logp(segments, catalogue)  # (K, items)
    mean_theta = SEGMENT_WEIGHT * segments.category_preference + (1 - SEGMENT_WEIGHT) / n_cat
    consumable_mass = (mean_theta * catalogue.consumable).sum(axis=1, keepdims=True)  # (K, 1)
    prior = np.log(segments.share)[None, :]
    band = users.set_index("user_id").loc[truth["user_id"], "attributes"]
    band = band.str.extract(r'"age_band":"([^"]+)"')[0].to_numpy()
    band_index = pd.Index(AGE_BANDS).get_indexer(band)
    assert (band_index >= 0).all()
    age = np.log(segments.age_preference[:, band_index]).T  # (U, K)

    user, item = ev["user"], ev["item"]
    views = count_matrix(user[ev["view"]], item[ev["view"]], (n_users, n_items))
    browse = count_matrix(user[ev["browse"]], item[ev["browse"]], (n_users, n_items))
    staple_pairs = np.unique(user[ev["staple"]] * n_items + item[ev["staple"]])
    staple_user, staple_item = staple_pairs // n_items, staple_pairs % n_items
    staples = count_matrix(staple_user, staple_item, (n_users, n_items))
    log_mean = np.log(mean_theta)[:, item_cat]  # (K, items)
    staple_cat = (np.log(mean_theta) - np.log(consumable_mass))[:, item_cat]
    item_part = browse @ log_w.T + staples @ log_w.T  # within-category item choices
    staple_part = staples @ staple_cat.T
    loglik = {
        "naive_iid": views @ (log_mean + log_w).T,
        "clean_iid": item_part + browse @ log_mean.T + staple_part,
    }

    # Sessions: browsing views per category; intents summed exactly under the mean preference.
    b = ev["browse"]
    n_sessions = int(ev["session"].max()) + 1
    session_user = np.zeros(n_sessions, dtype=np.int64)
    session_user[ev["session"]] = user
    sess_counts = count_matrix(ev["session"][b], item_cat[item[b]], (n_sessions, n_cat))
    per_session, intent = session_loglik(sess_counts, mean_theta)
    to_user = count_matrix(session_user, np.arange(n_sessions), (n_users, n_sessions))
    loglik["session_intent"] = item_part + to_user @ per_session + staple_part

    # Intent fixed at its likeliest category; the personal part of the preference marginalised.
    dense = sess_counts.toarray()
    has_views = dense.sum(axis=1) > 0
    draws = np.zeros((n_users, k, n_cat))
    fixed = np.zeros((n_users, k))
    stay = np.log(INTENT_SHARE + (1.0 - INTENT_SHARE) * mean_theta)  # (K, C)
    for seg in range(k):
        at_intent = np.zeros_like(dense)
        rows, cols = np.arange(n_sessions), intent[:, seg]
        at_intent[rows, cols] = dense[rows, cols]
        off = dense - at_intent
        np.add.at(draws[:, seg], (session_user[has_views], intent[has_views, seg]), 1.0)
        np.add.at(draws[:, seg], session_user, off)
        fixed[:, seg] = np.bincount(
            session_user,
            weights=(at_intent * stay[seg]).sum(1) + off.sum(1) * np.log(1.0 - INTENT_SHARE),
            minlength=n_users,
        )
    np.add.at(draws, (staple_user, slice(None), item_cat[staple_item]), 1.0)
    fixed -= staples.sum(axis=1).A * np.log(consumable_mass.T)
    log_pi = np.log(segments.category_preference)
    marginal = np.zeros((n_users, k))
    for u in range(n_users):
        for seg in range(k):
            drawn = np.flatnonzero(draws[u, seg])
            marginal[u, seg] = personal_marginal(
                draws[u, seg, drawn].astype(np.int64), log_pi[seg, drawn], n_cat
            )
    loglik["session_personal"] = item_part + fixed + marginal

    # Reference: every customer's actual personal preference known (not a classifier).
    personal = personal_tastes(config, segments, planted)
    theta_u = (
        SEGMENT_WEIGHT * segments.category_preference[None]
        + (1 - SEGMENT_WEIGHT) * personal[session_user][:, None, :]
    )  # (S, K, C)
    known, _ = session_loglik(sess_counts, theta_u)
    theta_user = (
        SEGMENT_WEIGHT * segments.category_preference[None]
        + (1 - SEGMENT_WEIGHT) * personal[:, None, :]
    )  # (U, K, C)
    cons = (theta_user * catalogue.consumable).sum(axis=2)
    known_staples = np.log(theta_user[staple_user, :, item_cat[staple_item]]) - np.log(
        cons[staple_user]
    )
    staple_known = np.zeros((n_users, k))
    np.add.at(staple_known, staple_user, known_staples)
    loglik["reference_known_taste"] = item_part + to_user @ known + staple_known
    scored = time.perf_counter() - started

    events = ev["events_per_user"]
    variants = {}
    for name, ll in loglik.items():
        ll = np.asarray(ll)
        variants[name] = {
            "items": scores((ll + prior).argmax(axis=1), planted, events),
            "items+age": scores((ll + prior + age).argmax(axis=1), planted, events),
        }
    classifiers = [name for name in variants if not name.startswith("reference")]
    best = max(classifiers, key=lambda name: variants[name]["items+age"]["ari"]["all"])
    print(
        json.dumps(
            {
                "shop": f"generated users={args.users} items={args.items} "
                        f"events_per_user={args.events_per_user} seed={args.seed}",
                "planted_segments": k,
                "users": {
                    "all" if low == 1 else f">={low} events": int((events >= low).sum())
                    for low in BUCKETS
                },
                "taste_events": {
                    "views": int(ev["view"].sum()),
                    "browsing_views": int(b.sum()),
                    "cross_sell_views": int((ev["view"] & ~b & ~ev["staple"]).sum()),
                    "staple_views": int(ev["staple"].sum()),
                    "distinct_staples": len(staple_pairs),
                },
                "variants": variants,
                "oracle": best,
                "bar": 0.8,
                "seconds": {"generate": round(generated, 1), "score": round(scored, 1)},
            },
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
