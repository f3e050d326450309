"""Customer data rights beyond the store's tables: erasure of derived data (model bundles in the
registry and local caches), retention and its settings, the periodic privacy job.

The store side lives in :mod:`recsys.store.erasure` (one registry of erase + export hooks) and
:mod:`recsys.store.privacy` (the durable scrub queue, consent history).
"""

from recsys.privacy.bundle_scrub import find_bundles, scrub_bundle
from recsys.privacy.jobs import PrivacyJob, run_privacy_job
from recsys.privacy.retention import drop_expired, run_retention
from recsys.privacy.scrubber import DerivedDataScrubber
from recsys.privacy.settings import PrivacySettings, privacy_settings

__all__ = [
    "DerivedDataScrubber",
    "PrivacyJob",
    "PrivacySettings",
    "drop_expired",
    "find_bundles",
    "privacy_settings",
    "run_privacy_job",
    "run_retention",
    "scrub_bundle",
]
