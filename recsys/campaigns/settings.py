"""Campaign settings (``RECSYS_SMTP_*``, ``RECSYS_CAMPAIGN_*``), read like the shared settings.

============================  ============================================================
variable                      meaning (default)
============================  ============================================================
RECSYS_SMTP_HOST              SMTP server; unset: e-mails go to the outbox (stored only)
RECSYS_SMTP_PORT              25
RECSYS_SMTP_FROM              sender address (``recsys@localhost``)
RECSYS_SMTP_STARTTLS          upgrade the connection with STARTTLS (false)
RECSYS_SMTP_USERNAME/PASSWORD login, when both are set
RECSYS_CAMPAIGN_SECRET        key of unsubscribe tokens and webhook signatures (a random key
                              kept in ``<var_dir>/campaign_secret`` when unset)
RECSYS_PUBLIC_URL             base of unsubscribe links (``http://127.0.0.1:8000``)
RECSYS_FREQUENCY_CAP          messages per customer and channel in the cap window (2)
RECSYS_FREQUENCY_CAP_DAYS     the cap window in days (7)
RECSYS_WEBHOOK_ATTEMPTS       webhook tries before the dead letter (5)
RECSYS_DELIVERY_LEASE_S       seconds after which another worker takes over the sends a silent
                              (dead) worker had claimed; renewed while it works (30)
============================  ============================================================
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.settings import ENV_PREFIX, get_settings, load_settings


class CampaignSettings(BaseSettings):
    """Channels and guards of the campaign worker (prefix ``RECSYS_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    smtp_host: str | None = None
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_from: str = "recsys@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    campaign_secret: str | None = Field(default=None, min_length=16)
    public_url: str = "http://127.0.0.1:8000"
    frequency_cap: int = Field(default=2, ge=1)
    frequency_cap_days: int = Field(default=7, ge=1)
    webhook_attempts: int = Field(default=5, ge=1)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    delivery_lease_s: float = Field(default=30.0, gt=0)

    def secret(self) -> bytes:
        """The signing key: ``campaign_secret``, else one kept under the var directory."""
        if self.campaign_secret:
            return self.campaign_secret.encode()
        path = Path(get_settings().var_dir) / "campaign_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # exclusive create: the API and the worker must end up with the same key
                with open(path, "x", opener=lambda p, f: os.open(p, f, 0o600)) as out:
                    out.write(secrets.token_hex(32))
            except FileExistsError:
                pass
        return path.read_text().strip().encode()


def campaign_settings(**values) -> CampaignSettings:
    """The campaign settings from the environment (``values`` override)."""
    return load_settings(CampaignSettings, **values)
