"""Per-key request rates (``recsys keys create --rate 100/s``), parsed and stored.

A rate is ``N/s``, ``N/min`` or ``N/h``. A key without a row here gets its role's default (see
``serving.rate_limits``). Reads and ingestion have separate rates, so a flood of events cannot
use up a key's recommendation budget or the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, Float, ForeignKey, Integer, select
from sqlalchemy.orm import Mapped, mapped_column

from recsys.errors import InvalidInputError
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.tables import Base

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
                 "hour": 3600}  # fmt: skip
KINDS = ("read", "ingest")


def parse_rate(text: str, field: str = "rate") -> float:
    """Requests per second of a rate written ``100/s``, ``6000/min`` or ``10/h``.

    Raises
    ------
    InvalidInputError
        Naming ``field`` when the text is not such a rate or the rate is not positive.
    """
    match = _RATE.match(str(text))
    if not match:
        raise InvalidInputError(f"{field}: {text!r} is not a rate; write it like 100/s, 600/min")
    per_second = float(match.group(1)) / _UNIT_SECONDS[match.group(2).lower()]
    if per_second <= 0:
        raise InvalidInputError(f"{field}: {text!r} must be above zero")
    return per_second


class KeyRateRow(Base):
    """The rates set for one key (NULL: the role default)."""

    __tablename__ = "api_key_rates"

    key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    read_per_second: Mapped[float | None] = mapped_column(Float)
    ingest_per_second: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class KeyRates:
    """A key's own rates in requests per second (None: its role's default)."""

    read: float | None = None
    ingest: float | None = None


class KeyRateStore:
    """Read and set the per-key rates.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(self, key_id: int, *, read: float | None = None, ingest: float | None = None) -> None:
        """Set the key's read and/or ingestion rate (requests per second)."""
        for name, value in (("read", read), ("ingest", ingest)):
            if value is not None and not value > 0:
                raise InvalidInputError(f"{name} rate must be above zero, got {value!r}")
        values = {"key_id": key_id, "read_per_second": read, "ingest_per_second": ingest}
        with write_session(self.engine) as session:
            stmt = dialect_insert(session, KeyRateRow.__table__)
            changed = {k: stmt.excluded[k] for k, v in values.items() if k != "key_id" and v}
            stmt = stmt.on_conflict_do_update(index_elements=["key_id"], set_=changed) if changed \
                else stmt.on_conflict_do_nothing()  # fmt: skip
            session.execute(stmt, values)

    def get(self, key_id: int) -> KeyRates:
        """The key's own rates (both None when none were set)."""
        with read_session(self.engine) as session:
            row = session.scalar(select(KeyRateRow).where(KeyRateRow.key_id == key_id))
            if row is None:
                return KeyRates()
            return KeyRates(row.read_per_second, row.ingest_per_second)
