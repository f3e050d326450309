"""Recommendations at send time: one batched call to the engine per worker batch, then the
campaign filters re-applied against the store (in stock and active now, not bought since the
enrolment, not already sent to this customer in the last N days)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.campaigns.definitions import Recommendations
from recsys.campaigns.models import ModelLoadError
from recsys.errors import RecsysError
from recsys.recommend import CrossSellRequest, Filters, RecommendRequest, Request
from recsys.store.campaigns import SendRow
from recsys.store.tables import Event, Item

Recommender = Callable[[Sequence[Request]], list[list[dict] | None]]
"""Answers a batch of engine requests with item dicts (``item_id``, ``title``, ``in_stock`` ...)
per request (None: that request failed)."""
OVERFETCH = 3  # ask the engine for this many times k, so the filters can drop some
CHUNK = 500


def engine_recommender(engine) -> Recommender:
    """A :data:`Recommender` over a ``RecommendationEngine`` in this process."""

    def recommend(requests: Sequence[Request]) -> list[list[dict] | None]:
        answers = engine.answer_many(list(requests))
        return [None if isinstance(a, RecsysError) else a.items for a in answers]

    return recommend


@dataclass
class Want:
    """Items wanted for one message."""

    user_id: str
    spec: Recommendations
    enrolled_at: datetime
    basket: list[str]


def _chunks(values: list[str]):
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def purchases_since(session: Session, users: list[str], since: datetime) -> dict[str, list]:
    """Per user: ``(item_id, timestamp)`` of purchases at or after ``since``."""
    out: dict[str, list] = defaultdict(list)
    for chunk in _chunks(users):
        stmt = select(Event.user_id, Event.item_id, Event.timestamp).where(
            Event.user_id.in_(chunk), Event.event_type == "purchase", Event.timestamp >= since
        )
        for user, item, at in session.execute(stmt):
            out[user].append((item, at))
    return out


def _sent_items(session: Session, users: list[str], since: datetime) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for chunk in _chunks(users):
        stmt = select(SendRow.user_id, SendRow.items, SendRow.created_at).where(
            SendRow.user_id.in_(chunk),
            SendRow.created_at >= since,
            SendRow.status.in_(("pending", "sending", "sent")),
        )
        for user, items, at in session.execute(stmt):
            out[user].extend((item, at) for item in items or [])
    return out


def items_by_id(session: Session, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Catalogue rows (``item_id``, ``title``, ``category``, ``price``, ``in_stock`` ...)."""
    out = {}
    for chunk in _chunks(sorted(ids)):
        for item in session.scalars(select(Item).where(Item.item_id.in_(chunk))):
            in_stock = bool(item.in_stock)  # the catalogue keeps it consistent with stock
            out[item.item_id] = {
                "item_id": item.item_id, "title": item.title, "category": item.category,
                "price": item.price, "in_stock": in_stock, "active": item.active,
                "attributes": item.attributes or {},
            }  # fmt: skip
    return out


def choose(
    session: Session,
    wants: list[Want],
    recommenders,
    now: datetime,
) -> tuple[list[list[dict[str, Any]]], dict[int, str]]:
    """The items of each want (at most ``spec.k``), filters re-applied; engine calls batched
    per model (``recommenders``: a ``campaigns.models.Recommenders``). Also, by position, why
    a want got nothing: the model it names cannot be loaded (never another model instead)."""
    by_model: dict[str | None, list[int]] = defaultdict(list)
    for i, want in enumerate(wants):
        by_model[want.spec.model].append(i)
    raw: list[list[dict]] = [[] for _ in wants]
    failed: dict[int, str] = {}
    for model, positions in by_model.items():
        try:
            recommender = recommenders.get(model)
        except ModelLoadError as exc:
            failed.update((i, str(exc)) for i in positions)
            continue
        if recommender is None:
            continue
        requests: list[Request] = []
        for i in positions:
            want = wants[i]
            k = want.spec.k * OVERFETCH
            if want.spec.kind == "cross_sell" and want.basket:
                requests.append(CrossSellRequest(basket=want.basket, k=k, user_id=want.user_id))
            else:
                requests.append(RecommendRequest(want.user_id, k, filters=Filters(in_stock=True)))
        for i, ids in zip(positions, recommender(requests), strict=True):
            raw[i] = ids or []
    users = sorted({w.user_id for w in wants})
    earliest = min((w.enrolled_at for w in wants), default=now)
    bought = purchases_since(session, users, earliest)
    longest = max((w.spec.exclude_sent_days for w in wants), default=0)
    sent = _sent_items(session, users, now - timedelta(days=longest)) if longest else {}
    catalogue = items_by_id(session, {i["item_id"] for ids in raw for i in ids})
    out = []
    for want, ids in zip(wants, raw, strict=True):
        drop = {item for item, at in bought.get(want.user_id, []) if at >= want.enrolled_at}
        cutoff = now - timedelta(days=want.spec.exclude_sent_days)
        drop |= {item for item, at in sent.get(want.user_id, []) if at >= cutoff}
        drop |= set(want.basket)
        chosen = []
        for answered in ids:
            item_id = answered["item_id"]
            # The store's row is the current stock; an item the store does not hold (a catalogue
            # only in the model bundle) keeps what the engine answered.
            item = catalogue.get(item_id) or {"active": True, "in_stock": True, **answered}
            if not item["in_stock"] or not item["active"] or item_id in drop:
                continue
            chosen.append(item)
            drop.add(item_id)
            if len(chosen) == want.spec.k:
                break
        out.append(chosen)
    return out, failed
