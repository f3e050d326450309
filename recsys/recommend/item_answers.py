"""Item-to-item scores of the engine over the live catalogue: what goes with a basket.

Basket items may be items the model knows, new items (added to the catalogue after training:
they count by their live category's complements, or by their proxies; see
``recsys.recommend.new_items``) or ids nobody knows (they count by the category the request
names for them, if any).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recsys.errors import InvalidInputError, NotFoundError
from recsys.recommend.state import lookup


class UnknownItemError(NotFoundError, KeyError):
    """An item id the served model does not know."""


def basket_scores(engine, basket: Sequence[str], categories: Mapping[str, str] | None = None):
    """``(scores, positions, unknown)`` of a cross-sell basket on ``engine``.

    ``scores`` has one entry per catalogue item (trained and new; basket items ``-inf``),
    ``positions`` are the basket items the catalogue holds, ``unknown`` the other ids.

    Raises
    ------
    InvalidInputError
        ``basket`` is not a non-empty list of ids.
    UnknownItemError
        No basket item is known and none has a category the model knows.
    """
    if isinstance(basket, str) or not isinstance(basket, Sequence | np.ndarray):
        raise InvalidInputError(f"basket must be a list of item ids, got {basket!r}")
    if len(basket) == 0:
        raise InvalidInputError("cross-sell needs at least one basket item")
    positions = lookup(engine.items_index, [str(i) for i in basket])
    known = np.unique(positions[positions >= 0])
    unknown = [str(i) for i, p in zip(basket, positions, strict=True) if p < 0]
    complements, new_items = engine.complements, engine.new_items
    hinted = [] if complements is None else complements.codes(unknown, categories)
    fresh = known[known >= engine.n_trained]
    trained = known[known < engine.n_trained]
    if complements is None:
        trained = np.unique(np.r_[trained, new_items.representative(fresh)])
    elif len(fresh):
        ids = list(engine.item_ids[fresh])
        hinted += complements.codes(ids, dict(zip(ids, engine.catalogue.category[fresh],
                                                  strict=True)))  # fmt: skip
    if len(trained) == 0 and not hinted:
        raise UnknownItemError(f"none of the basket items is known: {', '.join(unknown)}")
    if complements is None:
        scores = engine.requests.cross_sell(trained)
    else:
        scores = complements.scores(trained, hinted)
    scores = new_items.extend(scores)
    scores[known] = -np.inf
    return scores, known, unknown
