"""Privacy settings (``RECSYS_RETENTION_*``, ``RECSYS_PRIVACY_JOB_SECONDS``), read like the
shared settings.

==============================  ==========================================================
variable                        meaning (default)
==============================  ==========================================================
RECSYS_RETENTION_EVENTS_DAYS    events older than this are deleted and never trained on (730)
RECSYS_RETENTION_MESSAGES_DAYS  campaign messages and sends older than this are deleted (365)
RECSYS_RETENTION_AUDIT_DAYS     audit log entries older than this are deleted (2190: 6 years)
RECSYS_PRIVACY_JOB_SECONDS      how often the service runs retention and pending scrubs (3600;
                                0: never, leave it to ``recsys retention run`` from cron)
==============================  ==========================================================

0 days means "keep forever" for that kind.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.settings import ENV_PREFIX, load_settings

KINDS = ("events", "messages", "audit")


class PrivacySettings(BaseSettings):
    """Retention per kind of data and the period of the service's privacy job."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    retention_events_days: int = Field(default=730, ge=0)
    retention_messages_days: int = Field(default=365, ge=0)
    retention_audit_days: int = Field(default=2190, ge=0)
    privacy_job_seconds: float = Field(default=3600.0, ge=0)

    def days(self, kind: str) -> int:
        """The retention of ``kind`` (one of :data:`KINDS`) in days; 0: forever."""
        return int(getattr(self, f"retention_{kind}_days"))

    def cutoff(self, kind: str, now: datetime) -> datetime | None:
        """Rows of ``kind`` older than this are expired at ``now``; None: kept forever."""
        days = self.days(kind)
        return now - timedelta(days=days) if days else None


def privacy_settings(**values) -> PrivacySettings:
    """The privacy settings from the environment (``values`` override)."""
    return load_settings(PrivacySettings, **values)
