"""Generate a whole synthetic shop: catalogue, customers, sessions and the ground truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from recsys.synth.catalogue import build_catalogue
from recsys.synth.config import STREAM_USERS, ShopConfig, rng_for
from recsys.synth.customers import block_bounds, build_segments, draw_customers, users_table
from recsys.synth.sessions import (
    CART,
    EVENT_NAMES,
    PURCHASE,
    EventBlock,
    events_per_session,
    simulate_sessions,
)
from recsys.synth.writer import SUMMARY_FILE, ShopWriter, check_output_dir

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILES = (
    "events.parquet",
    "items.parquet",
    "users.parquet",
    "truth/user_segments.parquet",
    "truth/complements.parquet",
    SUMMARY_FILE,
)


def _block_counts(events: EventBlock, n_items: int) -> dict[str, int]:
    """Funnel statistics of one block (customers never span blocks, so they add up)."""
    types = np.bincount(events.event_type, minlength=len(EVENT_NAMES))
    key = events.session * n_items + events.item
    bought = np.unique(key[events.event_type == PURCHASE])
    carts = key[events.event_type == CART]
    abandoned = carts[~np.isin(carts, bought)]
    # Repeat purchases: (customer, item) pairs bought in more than one session.
    pair = (events.session_user[bought // n_items]) * n_items + bought % n_items
    _, per_pair = np.unique(pair, return_counts=True)
    return {
        **{f"events_{name}": int(count) for name, count in zip(EVENT_NAMES, types, strict=True)},
        "sessions": len(events.session_user),
        "sessions_with_purchase": len(np.unique(bought // n_items)),
        "sessions_with_abandoned_cart": len(np.unique(abandoned // n_items)),
        "repeat_purchase_pairs": int((per_pair > 1).sum()),
    }


def generate_shop(
    config: ShopConfig,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = False,
    on_block: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a synthetic shop to ``out``: events, items and users Parquet plus ``truth/``.

    Parameters
    ----------
    config : ShopConfig
        Sizes, seed and time span.
    out : path
        Target directory. It must be absent or empty, or (with ``force``) hold an earlier shop.
        Files are written to a hidden sibling directory and renamed into place at the end, so an
        interrupted run leaves nothing behind.
    force : bool
        Replace an earlier shop in ``out``.
    progress : bool
        Show a progress bar on stderr.
    on_block : callable, optional
        Called as ``on_block(done, total)`` after each block of customers.

    Returns
    -------
    dict
        The content of ``truth/summary.json`` plus ``out`` and ``wall_seconds``.

    Raises
    ------
    OutputExistsError
        ``out`` is not empty (and ``force`` is off or it holds no earlier shop).
    """
    started = time.perf_counter()
    out = Path(out)
    check_output_dir(out, force)  # fail before the expensive part
    catalogue = build_catalogue(config)
    segments = build_segments(config, catalogue)
    sessions_per_user = max(1.0, config.events_per_user / events_per_session(catalogue))
    start_ms = int(config.start_time.timestamp() * 1000)
    span_ms = int(config.days * 86_400_000)
    counts: dict[str, int] = {}
    with ShopWriter(out, force) as writer:
        writer.write_table("items.parquet", catalogue.items_table())
        writer.write_table("truth/complements.parquet", catalogue.complements_table())
        bar = tqdm(
            total=config.users, desc="generating", unit="user", disable=not progress, leave=False
        )
        with bar:
            for block in range(config.n_blocks):
                rng = rng_for(config.seed, STREAM_USERS, block)
                first, n = block_bounds(config, block)
                customers = draw_customers(segments, first, n, rng)
                users = users_table(config, segments, customers, rng)
                events = simulate_sessions(
                    catalogue, segments, customers, rng, sessions_per_user, start_ms, span_ms
                )
                writer.append("users.parquet", users)
                writer.append("events.parquet", events.table(users["user_id"], catalogue.item_ids))
                writer.append(
                    "truth/user_segments.parquet",
                    pa.table({"user_id": users["user_id"], "segment": customers.segment}),
                )
                for key, value in _block_counts(events, catalogue.n_items).items():
                    counts[key] = counts.get(key, 0) + value
                bar.update(n)
                if on_block is not None:
                    on_block(block + 1, config.n_blocks)
        n_events = sum(counts[f"events_{name}"] for name in EVENT_NAMES)
        summary = {
            "generator": "recsys.synth",
            "format_version": FORMAT_VERSION,
            "seed": config.seed,
            "params": config.as_dict(),
            "counts": {
                "users": config.users,
                "items": catalogue.n_items,
                "categories": catalogue.n_categories,
                "segments": config.segments,
                "complement_pairs": int((catalogue.complement >= 0).sum()),
                "events": n_events,
                **counts,
            },
            "segments": segments.describe(catalogue),
            "files": list(FILES),
        }
        writer.write_json(SUMMARY_FILE, summary)
    wall = time.perf_counter() - started
    logger.info("generated %d events for %d users in %.1fs", n_events, config.users, wall)
    return summary | {"out": str(out), "wall_seconds": round(wall, 3)}
