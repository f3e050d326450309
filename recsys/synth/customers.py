"""Planted taste segments and the customers drawn from them (the segmentation truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.synth.catalogue import Catalogue, CategorySampler, id_array
from recsys.synth.config import STREAM_SEGMENTS, USERS_PER_BLOCK, ShopConfig, rng_for

SEGMENT_CONCENTRATION = 0.25  # Dirichlet alpha of a segment's category preferences (low = focused)
SEGMENT_WEIGHT = 0.85  # a customer's tastes: this much segment, the rest personal
ITEM_TASTE_SIGMA = 0.9  # lognormal spread of a segment's liking for single items
ACTIVITY_SIGMA = 0.8  # lognormal spread of customers' activity (heavy users exist)

AGE_BANDS = np.array(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"])
COUNTRIES = np.array(["DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "AT", "BE", "DK", "IE"])
COUNTRY_SHARE = np.array([22, 17, 16, 8, 9, 9, 6, 4, 3, 3, 2, 1], dtype=np.float64)
TIERS = np.array(["none", "silver", "gold"])
CONSENT_SHARE = {"email": 0.7, "sms": 0.25, "push": 0.4}


@dataclass
class Segments:
    """The planted taste segments.

    Attributes
    ----------
    share : ndarray (K,)
        Probability of a customer belonging to each segment.
    category_preference : ndarray (K, C)
        Each segment's distribution over categories.
    price_sensitivity : ndarray (K,)
        Exponent ``b`` in the item weight factor ``(price / category median) ** -b``.
    item_sampler : CategorySampler
        Draws an item of a category with the segment's item weights (popularity x taste x price).
    """

    share: np.ndarray
    category_preference: np.ndarray
    price_sensitivity: np.ndarray
    age_preference: np.ndarray
    item_sampler: CategorySampler

    @property
    def n_segments(self) -> int:
        return len(self.share)

    def describe(self, catalogue: Catalogue, top: int = 3) -> list[dict]:
        """JSON-ready summary per segment: share, price sensitivity, favourite categories."""
        out = []
        for k in range(self.n_segments):
            best = np.argsort(-self.category_preference[k], kind="stable")[:top]
            out.append(
                {
                    "segment": k,
                    "share": round(float(self.share[k]), 4),
                    "price_sensitivity": round(float(self.price_sensitivity[k]), 3),
                    "top_categories": [catalogue.category_names[c] for c in best],
                }
            )
        return out


def build_segments(config: ShopConfig, catalogue: Catalogue) -> Segments:
    """Draw ``config.segments`` segments from the seed's segment stream."""
    rng = rng_for(config.seed, STREAM_SEGMENTS)
    k, n_cat = config.segments, catalogue.n_categories
    share = rng.dirichlet(np.full(k, 4.0))
    overall = rng.dirichlet(np.full(n_cat, 2.0))
    focused = rng.dirichlet(np.full(n_cat, SEGMENT_CONCENTRATION), size=k)
    preference = 0.85 * focused + 0.15 * overall
    sensitivity = rng.uniform(-0.5, 1.5, k)
    relative_price = catalogue.price / catalogue.category_median[catalogue.item_category]
    taste = rng.lognormal(0.0, ITEM_TASTE_SIGMA, size=(k, catalogue.n_items))
    weights = catalogue.popularity[None, :] * taste
    weights *= relative_price[None, :] ** -sensitivity[:, None]
    sampler = CategorySampler(np.maximum(weights, 1e-300), catalogue.category_start)
    age = rng.dirichlet(np.full(len(AGE_BANDS), 1.0), size=k)
    return Segments(share, preference, sensitivity, age, sampler)


@dataclass
class CustomerBlock:
    """One block of customers (indices ``first .. first + n - 1``) and their tastes."""

    first: int
    segment: np.ndarray
    category_cdf: np.ndarray  # (n, C) cumulative category preferences, last column exactly 1
    activity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.segment)

    def user_ids(self, n_users: int) -> pa.Array:
        return id_array(n_users, "u", self.first, self.n)


def draw_customers(
    segments: Segments, first: int, n: int, rng: np.random.Generator
) -> CustomerBlock:
    """Draw ``n`` customers: segment, personal category preferences and activity level."""
    segment = rng.choice(segments.n_segments, size=n, p=segments.share)
    n_cat = segments.category_preference.shape[1]
    personal = rng.dirichlet(np.full(n_cat, 0.3), size=n)
    preference = SEGMENT_WEIGHT * segments.category_preference[segment]
    preference += (1.0 - SEGMENT_WEIGHT) * personal
    cdf = np.cumsum(preference, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    activity = rng.lognormal(-(ACTIVITY_SIGMA**2) / 2, ACTIVITY_SIGMA, n)
    return CustomerBlock(first, segment, cdf, activity)


def sample_rows(cdf: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column index per draw from row ``rows`` of a row-wise cumulative matrix (last col == 1)."""
    n_rows, n_cols = cdf.shape
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()
    col = np.searchsorted(flat, rows + u, side="right") - rows * n_cols
    return np.minimum(col, n_cols - 1)


def users_table(
    config: ShopConfig, segments: Segments, block: CustomerBlock, rng: np.random.Generator
) -> pa.Table:
    """The ``users`` rows of a block: e-mail, country, consents and attributes as JSON text."""
    n = block.n
    ids = block.user_ids(config.users)
    email = pc.binary_join_element_wise(ids, "@example.com", "")
    country_share = COUNTRY_SHARE / COUNTRY_SHARE.sum()
    country = pa.array(COUNTRIES[rng.choice(len(COUNTRIES), n, p=country_share)])
    flags = {name: rng.random(n) < p for name, p in CONSENT_SHARE.items()}
    code = flags["email"] * 4 + flags["push"] * 2 + flags["sms"]
    consent_text = np.array(
        [
            f'{{"email":{str(bool(c & 4)).lower()},"push":{str(bool(c & 2)).lower()},'
            f'"sms":{str(bool(c & 1)).lower()}}}'
            for c in range(8)
        ]
    )
    age_cdf = np.cumsum(segments.age_preference[block.segment], axis=1)
    age_cdf[:, -1] = 1.0
    age = sample_rows(age_cdf, np.arange(n), rng.random(n))
    tier = np.minimum((rng.random(n) ** 3 * 3).astype(np.int64), 2)
    start = config.start_time.replace(tzinfo=None)
    days_before = rng.integers(1, 3 * 365, n)
    signup = np.datetime64(start.date()) - days_before.astype("timedelta64[D]")
    signup_text = pa.array(np.datetime_as_string(signup, unit="D"))
    attributes = pc.binary_join_element_wise(
        '{"age_band":"',
        pa.array(AGE_BANDS[age]),
        '","loyalty_tier":"',
        pa.array(TIERS[tier]),
        '","signup_date":"',
        signup_text,
        '"}',
        "",
    )
    return pa.table(
        {
            "user_id": ids,
            "email": email,
            "country": country,
            "consents": pa.array(consent_text[code]),
            "attributes": attributes,
        }
    )


def block_bounds(config: ShopConfig, block: int) -> tuple[int, int]:
    """First customer index and size of block ``block``."""
    first = block * USERS_PER_BLOCK
    return first, min(USERS_PER_BLOCK, config.users - first)
