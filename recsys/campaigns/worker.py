"""The campaign worker: consume triggers, run due steps, deliver sends — in a loop.

Everything it does is recorded in the database as it goes, so a worker can be killed at any
point and a new one carries on — or, on PostgreSQL, the other workers already sharing the due
steps and sends (see :mod:`recsys.campaigns.runner` and :mod:`recsys.campaigns.delivery`).
Time comes from ``clock`` so tests step through delays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from recsys.campaigns import definitions as d
from recsys.campaigns.channels import Channel, make_channels
from recsys.campaigns.delivery import Deliverer
from recsys.campaigns.models import Recommenders
from recsys.campaigns.recommend import Recommender
from recsys.campaigns.runner import StepRunner
from recsys.campaigns.sending import SendBatch
from recsys.campaigns.settings import CampaignSettings, campaign_settings
from recsys.campaigns.templates import CompiledTemplate, compile_template
from recsys.campaigns.triggers import TriggerConsumer
from recsys.store import Store

logger = logging.getLogger(__name__)


def system_clock() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


class CampaignWorker:
    """Runs every active campaign of a store.

    Parameters
    ----------
    store : Store
    recommenders : Recommenders or dict
        A :class:`~recsys.campaigns.models.Recommenders` (named models loaded on demand), or
        ``name -> Recommender`` with ``"default"`` for send steps that name no model. A send
        whose model has no recommender fails (recorded), it never gets another model's items.
    settings : CampaignSettings, optional
        Read from the environment when not given.
    channels : dict, optional
        ``name -> Channel``; default :func:`make_channels` (no SMTP host: e-mail to the outbox).
    clock : callable, optional
        Returns the current UTC time (tests inject their own).
    batch_size : int
        Due steps (and events) per transaction.
    """

    def __init__(self, store: Store,
                 recommenders: Recommenders | dict[str, Recommender] | None = None,
                 settings: CampaignSettings | None = None,
                 channels: dict[str, Channel] | None = None,
                 clock: Callable[[], datetime] = system_clock, batch_size: int = 1000,
                 lag_s: float | None = None) -> None:  # fmt: skip
        self.store = store
        self.settings = settings or campaign_settings()
        self.clock = clock
        self.batch_size = int(batch_size)
        channels = make_channels(self.settings) if channels is None else channels
        outbox = {c for c in d.CHANNELS if c not in channels}
        self._templates: dict[str, CompiledTemplate] = {}
        self._campaigns: dict[str, tuple[str, d.Campaign]] = {}
        self._since: dict[str, datetime] = {}
        self.recommenders = Recommenders.of(recommenders)
        self.sends = SendBatch(self.settings, self.settings.secret(), outbox,
                               self.recommenders, self._templates)  # fmt: skip
        self.runner = StepRunner(store.engine, self.campaigns, self.sends, clock)
        self.triggers = TriggerConsumer(store.engine, self.campaigns, clock, lag_s,
                                        since=lambda: self._since)  # fmt: skip
        self.deliverer = Deliverer(store.engine, channels, clock, self.settings.webhook_attempts,
                                   self.settings.delivery_lease_s)  # fmt: skip

    def campaigns(self) -> dict[str, tuple[str, d.Campaign]]:
        """``id -> (status, definition)`` as last loaded by :meth:`reload`."""
        return self._campaigns

    def reload(self) -> None:
        """Read the campaigns and templates again (they change over the API)."""
        campaigns = {}
        for row in self.store.campaigns.all():
            if row["status"] in ("active", "paused"):
                campaigns[row["id"]] = (row["status"], d.parse_campaign(row["definition"]))
                self._since[row["id"]] = row["updated_at"]
        templates = self.store.campaigns.templates()
        compiled = {tid: compile_template(t, check=False) for tid, t in templates.items()}
        self._templates.clear()
        self._templates.update(compiled)
        self._campaigns = campaigns
        active = (c for status, c in campaigns.values() if status == "active")
        self.recommenders.keep(d.models(active))  # load the arms' models outside a transaction

    def run_once(self, max_batches: int = 1000) -> dict[str, int]:
        """Catch up: consume triggers, run every due step, deliver every due send."""
        self.reload()
        self.deliverer.recover()  # every pass: another worker may have died since
        totals = {
            "events": 0,
            "segment_events": 0,
            "scheduled": 0,
            "claimed": 0,
            "sent": 0,
            "suppressed": 0,
            "delayed": 0,
            "finished": 0,
            "delivered": 0,
            "failed": 0,
        }
        for _ in range(max_batches):
            n = self.triggers.events(self.batch_size)
            totals["events"] += n
            if n < self.batch_size:
                break
        for _ in range(max_batches):
            n = self.triggers.segment_events(self.batch_size)
            totals["segment_events"] += n
            if n < self.batch_size:
                break
        totals["scheduled"] = self.triggers.schedules()
        for _ in range(max_batches):
            counts = self.runner.run(self.batch_size)
            for key in ("claimed", "sent", "suppressed", "delayed", "finished"):
                totals[key] += counts[key]
            if counts["claimed"] < self.batch_size or counts["claimed"] == counts["delayed"]:
                break
        for _ in range(max_batches):
            counts = self.deliverer.run(self.batch_size)
            totals["delivered"] += counts["sent"]
            totals["failed"] += counts["failed"] + counts["dead"]
            if sum(counts.values()) < self.batch_size:
                break
        return totals

    def run_forever(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """:meth:`run_once` every ``poll_s`` seconds until ``stop`` is set (errors are logged
        and the loop goes on: the work is in the database and is retried)."""
        while not stop.is_set():
            try:
                counts = self.run_once()
                if counts["claimed"] or counts["delivered"]:
                    logger.info("campaign worker: %s", counts)
            except Exception:  # keep the worker alive; the failed batch was rolled back
                logger.exception("campaign worker batch failed")
            stop.wait(poll_s)
