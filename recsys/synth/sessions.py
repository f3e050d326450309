"""Shopping sessions of a block of customers, vectorised over all their sessions at once.

A session has an intent category; the customer views items (mostly of that category), adds some
to the cart, and either checks out (buying most of the cart) or abandons it, sometimes removing
items first. Buying an item with a planted complement often adds the complement to the basket,
and consumable "staples" are bought again and again across sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.synth.catalogue import Catalogue
from recsys.synth.customers import CustomerBlock, Segments, sample_rows

EVENT_NAMES = ("view", "add_to_cart", "remove_from_cart", "purchase")
VIEW, CART, REMOVE, PURCHASE = range(4)

EXTRA_VIEWS_MEAN = 3.5  # views per session: 1 + Poisson(this)
INTENT_SHARE = 0.7  # views inside the session's intent category
CART_RATE = 0.15  # a view leads to add_to_cart
CHECKOUT_RATE = 0.4  # sessions (with carts) that end in a checkout
CART_PURCHASE_RATE = 0.85  # at checkout, share of the cart that is bought
REMOVE_RATE = 0.35  # abandoned cart items that are explicitly removed
COMPLEMENT_RATE = 0.6  # buying an item with a planted complement also buys the complement
STAPLE_SESSION_RATE = 0.3  # sessions in which a customer re-buys one of their staples
MAX_STAPLES = 3
GAP_MEDIAN_S, GAP_SIGMA, GAP_MIN_S, GAP_MAX_S = 25.0, 1.0, 1.0, 900.0
SESSION_PAUSE_S = 1800  # at least this long between two sessions of one customer
DEVICES = ('{"device":"app"}', '{"device":"desktop"}', '{"device":"mobile"}')
DEVICE_SHARE = (0.35, 0.25, 0.40)
_REMOVE_KEY, _PURCHASE_KEY = 1 << 40, 1 << 41  # order keys: browse < removals < checkout


def events_per_session(catalogue: Catalogue) -> float:
    """Expected events in one session under the constants above (to size session counts)."""
    views = 1.0 + EXTRA_VIEWS_MEAN
    carts = views * CART_RATE
    bought = carts * CHECKOUT_RATE * CART_PURCHASE_RATE
    removed = (carts - bought) * REMOVE_RATE
    complements = 3.0 * bought * float(np.mean(catalogue.complement >= 0)) * COMPLEMENT_RATE
    staples = 3.0 * STAPLE_SESSION_RATE * (MAX_STAPLES / (MAX_STAPLES + 1))
    return views + carts + bought + removed + complements + staples


@dataclass
class EventBlock:
    """Events of one block in time order per customer (internal indices)."""

    user: np.ndarray  # block-local customer index
    session: np.ndarray  # block-local session index
    item: np.ndarray
    event_type: np.ndarray  # index into EVENT_NAMES
    quantity: np.ndarray
    value: np.ndarray  # NaN for views
    timestamp_ms: np.ndarray
    session_user: np.ndarray
    session_rank: np.ndarray  # session number within its customer
    session_device: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    def table(self, user_ids: pa.Array, item_ids: pa.Array) -> pa.Table:
        """The block's rows in the canonical ``events`` schema."""
        width = max(3, len(str(int(self.session_rank.max(initial=0)))))
        rank = pc.utf8_lpad(pc.cast(pa.array(self.session_rank), pa.string()), width, "0")
        session_ids = pc.binary_join_element_wise(
            user_ids.take(pa.array(self.session_user)), rank, "-s"
        )
        events = pa.array(self.session)
        return pa.table(
            {
                "user_id": user_ids.take(pa.array(self.user)),
                "item_id": item_ids.take(pa.array(self.item)),
                "event_type": pa.array(EVENT_NAMES, pa.string()).take(pa.array(self.event_type)),
                "timestamp": pa.array(self.timestamp_ms, pa.timestamp("ms", tz="UTC")),
                "quantity": pa.array(self.quantity, pa.int64()),
                "value": pa.array(self.value, pa.float64(), from_pandas=True),
                "session_id": session_ids.take(events),
                "properties": pa.array(DEVICES, pa.string()).take(
                    pa.array(self.session_device).take(events)
                ),
            }
        )


def _positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For counts per owner: owner of every element, its rank, and each owner's first element."""
    first = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(int(counts.sum())) - first[owner], first


def draw_staples(
    catalogue: Catalogue, segments: Segments, customers: CustomerBlock, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's consumable staples (re-bought across sessions): items and how many."""
    n = customers.n
    preference = np.diff(customers.category_cdf, axis=1, prepend=0.0) * catalogue.consumable
    total = preference.sum(axis=1, keepdims=True)
    count = rng.integers(0, MAX_STAPLES + 1, n) * (total[:, 0] > 0)
    cdf = np.cumsum(preference / np.where(total > 0, total, 1.0), axis=1)
    cdf[:, -1] = 1.0
    rows = np.repeat(np.arange(n), MAX_STAPLES)
    category = sample_rows(cdf, rows, rng.random(len(rows)))
    items = segments.item_sampler.sample(
        customers.segment[rows], category, rng.random(len(rows))
    ).reshape(n, MAX_STAPLES)
    return items, count


def simulate_sessions(
    catalogue: Catalogue,
    segments: Segments,
    customers: CustomerBlock,
    rng: np.random.Generator,
    sessions_per_user: float,
    start_ms: int,
    span_ms: int,
) -> EventBlock:
    """All sessions and events of one block of customers."""
    n_items = catalogue.n_items
    staples, n_staples = draw_staples(catalogue, segments, customers, rng)
    n_sessions = 1 + rng.poisson(max(sessions_per_user - 1.0, 0.0) * customers.activity)
    s_user, s_rank, _ = _positions(n_sessions)
    n_s = len(s_user)
    intent = sample_rows(customers.category_cdf, s_user, rng.random(n_s))
    device = rng.choice(len(DEVICES), n_s, p=DEVICE_SHARE)

    # Browsing: views, mostly inside the session's intent category.
    v_sess, v_pos, _ = _positions(1 + rng.poisson(EXTRA_VIEWS_MEAN, n_s))
    v_user = s_user[v_sess]
    v_cat = intent[v_sess]
    wander = np.flatnonzero(rng.random(len(v_sess)) >= INTENT_SHARE)
    v_cat[wander] = sample_rows(customers.category_cdf, v_user[wander], rng.random(len(wander)))
    v_item = segments.item_sampler.sample(customers.segment[v_user], v_cat, rng.random(len(v_sess)))

    # Carts: first add of an item per session only.
    carted = np.flatnonzero(rng.random(len(v_sess)) < CART_RATE)
    _, first = np.unique(v_sess[carted] * n_items + v_item[carted], return_index=True)
    carted = np.sort(carted[first])
    c_sess, c_item, c_key = v_sess[carted], v_item[carted], 4 * v_pos[carted] + 1
    consumable = catalogue.consumable[catalogue.item_category[c_item]]
    c_qty = 1 + consumable * rng.poisson(0.4, len(c_sess))
    checkout = rng.random(n_s) < CHECKOUT_RATE
    bought = checkout[c_sess] & (rng.random(len(c_sess)) < CART_PURCHASE_RATE)
    removed = ~bought & (rng.random(len(c_sess)) < REMOVE_RATE)

    # Cross-sell: a bought item's planted complement joins the basket (unless already there).
    cart_keys = c_sess * n_items + c_item
    partner = catalogue.complement[c_item]
    cross = bought & (partner >= 0) & (rng.random(len(c_sess)) < COMPLEMENT_RATE)
    cross &= ~np.isin(c_sess * n_items + partner, cart_keys)
    cross_idx = np.flatnonzero(cross)
    _, first = np.unique(c_sess[cross_idx] * n_items + partner[cross_idx], return_index=True)
    cross_idx = np.sort(cross_idx[first])  # two items with one complement: add it once
    x_sess, x_item, x_key = c_sess[cross_idx], partner[cross_idx], c_key[cross_idx]
    basket_keys = np.concatenate([cart_keys, x_sess * n_items + x_item])

    # Staples: re-buy one of the customer's consumables, straight to the cart.
    st = np.flatnonzero((n_staples[s_user] > 0) & (rng.random(n_s) < STAPLE_SESSION_RATE))
    pick = (rng.random(len(st)) * n_staples[s_user[st]]).astype(np.int64)
    st_item = staples[s_user[st], pick]
    keep = ~np.isin(st * n_items + st_item, basket_keys)
    st, st_item = st[keep], st_item[keep]
    st_qty = 1 + rng.poisson(0.8, len(st))

    ones = np.ones
    parts = [  # (session, order key, item, type, quantity)
        (v_sess, 4 * v_pos, v_item, VIEW, ones(len(v_sess), np.int64)),
        (c_sess, c_key, c_item, CART, c_qty),
        (c_sess[removed], _REMOVE_KEY + c_key[removed], c_item[removed], REMOVE, c_qty[removed]),
        (c_sess[bought], _PURCHASE_KEY + c_key[bought], c_item[bought], PURCHASE, c_qty[bought]),
        (x_sess, x_key + 1, x_item, VIEW, ones(len(x_sess), np.int64)),
        (x_sess, x_key + 2, x_item, CART, ones(len(x_sess), np.int64)),
        (x_sess, _PURCHASE_KEY + x_key + 2, x_item, PURCHASE, ones(len(x_sess), np.int64)),
        (st, np.full(len(st), -2), st_item, VIEW, ones(len(st), np.int64)),
        (st, np.full(len(st), -1), st_item, CART, st_qty),
        (st, np.full(len(st), _PURCHASE_KEY - 1), st_item, PURCHASE, st_qty),
    ]
    sess = np.concatenate([p[0] for p in parts])
    key = np.concatenate([p[1] for p in parts])
    order = np.lexsort((key, sess))
    sess = sess[order]
    item = np.concatenate([p[2] for p in parts])[order]
    etype = np.concatenate([np.full(len(p[0]), p[3], np.int8) for p in parts])[order]
    qty = np.concatenate([p[4] for p in parts]).astype(np.int64)[order]
    value = np.where(etype == VIEW, np.nan, np.round(catalogue.price[item] * qty, 2))
    timestamp = _timestamps(sess, s_user, n_s, rng, start_ms, span_ms)
    return EventBlock(
        user=s_user[sess],
        session=sess,
        item=item,
        event_type=etype,
        quantity=qty,
        value=value,
        timestamp_ms=timestamp,
        session_user=s_user,
        session_rank=s_rank,
        session_device=device,
    )


def _timestamps(
    sess: np.ndarray,
    s_user: np.ndarray,
    n_s: int,
    rng: np.random.Generator,
    start_ms: int,
    span_ms: int,
) -> np.ndarray:
    """Event times: seconds-to-minutes gaps inside sessions, sessions spread over the span."""
    gaps = rng.lognormal(np.log(GAP_MEDIAN_S), GAP_SIGMA, len(sess))
    gaps = (np.clip(gaps, GAP_MIN_S, GAP_MAX_S) * 1000).astype(np.int64)
    first_event = np.searchsorted(sess, np.arange(n_s))
    gaps[first_event] = 0
    cum = np.cumsum(gaps)
    within = cum - cum[first_event][sess]
    last_event = np.append(first_event[1:], len(sess)) - 1
    slot = within[last_event] + SESSION_PAUSE_S * 1000  # duration plus the pause after it

    # Spread each customer's sessions uniformly over the span without overlaps: sorted uniform
    # offsets over the free time, plus the slots of the customer's earlier sessions.
    n_users = int(s_user[-1]) + 1 if n_s else 0
    busy = np.bincount(s_user, weights=slot, minlength=n_users).astype(np.int64)
    free = np.maximum(span_ms - busy, 0)
    u = rng.random(n_s)
    u = u[np.lexsort((u, s_user))]
    user_first = np.searchsorted(s_user, np.arange(n_users))
    before = np.cumsum(slot) - slot
    earlier = before - before[user_first][s_user]
    session_start = start_ms + (u * free[s_user]).astype(np.int64) + earlier
    return session_start[sess] + within
