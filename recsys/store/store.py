"""One object that opens the database and hands out every store over the same engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from recsys.store.audit import AuditLog
from recsys.store.campaigns import CampaignStore
from recsys.store.catalogue import ItemStore
from recsys.store.customers import CustomerStore
from recsys.store.db import make_engine, mask_url, read_session
from recsys.store.erasure import ErasureRegistry, erase_user, erased_hashes
from recsys.store.events import EventStore
from recsys.store.keys import ApiKeyStore
from recsys.store.migrations import init_schema
from recsys.store.profiles import ProfileStore
from recsys.store.segments import SegmentStore


@dataclass
class Store:
    """The store's parts over one engine: ``events``, ``profiles``, ``items`` (the catalogue),
    ``customers`` (customer attributes), ``keys``, ``audit``, ``segments``, ``campaigns``.

    Build it with :meth:`open` (engine + schema migration) or from an existing engine.
    """

    engine: Engine
    events: EventStore = field(init=False)
    profiles: ProfileStore = field(init=False)
    items: ItemStore = field(init=False)
    customers: CustomerStore = field(init=False)
    keys: ApiKeyStore = field(init=False)
    audit: AuditLog = field(init=False)
    segments: SegmentStore = field(init=False)
    campaigns: CampaignStore = field(init=False)

    def __post_init__(self) -> None:
        self.events = EventStore(self.engine)
        self.profiles = ProfileStore(self.engine)
        self.items = ItemStore(self.engine)
        self.customers = CustomerStore(self.engine)
        self.keys = ApiKeyStore(self.engine)
        self.audit = AuditLog(self.engine)
        self.segments = SegmentStore(self.engine)
        self.campaigns = CampaignStore(self.engine)

    @classmethod
    def open(cls, url: str | None = None, **engine_kwargs: Any) -> Store:
        """Connect to ``url`` (see :func:`make_engine`) and create/migrate the schema."""
        engine = make_engine(url, **engine_kwargs)
        init_schema(engine)
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return mask_url(self.engine.url)

    def erase_user(
        self, user_id: str, actor: str, *, registry: ErasureRegistry | None = None
    ) -> dict[str, Any]:
        """See :func:`recsys.store.erasure.erase_user`."""
        return erase_user(self.engine, user_id, actor, registry=registry)

    def erased_hashes(self) -> set[str]:
        """Hashes of every erased user (see :func:`recsys.store.erasure.user_hash`)."""
        with read_session(self.engine) as session:
            return erased_hashes(session)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def read_erased_hashes(url: str) -> set[str]:
    """Erased users' hashes in the store at ``url`` (opened, migrated, read and closed)."""
    store = Store.open(url)
    try:
        return store.erased_hashes()
    finally:
        store.close()
