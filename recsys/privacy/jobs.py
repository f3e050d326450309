"""The service's periodic privacy job: retention, then the pending scrubs, every N seconds."""

from __future__ import annotations

import logging
import threading
from typing import Any

from recsys.privacy.retention import run_retention
from recsys.privacy.scrubber import DerivedDataScrubber
from recsys.privacy.settings import PrivacySettings

logger = logging.getLogger(__name__)


def run_privacy_job(scrubber: DerivedDataScrubber, settings: PrivacySettings) -> dict[str, Any]:
    """One pass: delete expired rows, retry due scrubs; returns both reports."""
    return {
        "retention": run_retention(scrubber.store.engine, settings),
        "scrubs": scrubber.retry_due(),
    }


class PrivacyJob:
    """A daemon thread running :func:`run_privacy_job` every ``settings.privacy_job_seconds``
    (first pass one period after start). Several service replicas may each run one: deletes
    and scrubs are idempotent."""

    def __init__(self, scrubber: DerivedDataScrubber, settings: PrivacySettings) -> None:
        self.scrubber = scrubber
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the thread (no-op when the period is 0 or it runs already)."""
        if self.settings.privacy_job_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="privacy-job", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for a pass in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.privacy_job_seconds):
            try:
                self.last = run_privacy_job(self.scrubber, self.settings)
            except Exception:  # a failed pass (store down) must not end the thread
                logger.exception("privacy job failed; retrying in %.0f s",
                                 self.settings.privacy_job_seconds)  # fmt: skip
