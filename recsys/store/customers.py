"""Customers: the attributes a shop sends (e-mail, country, time zone, consents, free attributes).

They live in ``user_profiles`` beside the event aggregates, so one row is everything known about
a customer and the existing erasure hook of that table removes it all. Records are validated by
the canonical validator against :data:`USER_RECORDS` (the loader's ``USERS`` columns plus
``time_zone``); :func:`customer_problem` adds what a column kind cannot say: a plausible e-mail
address, a known IANA time zone, and consents as ``{channel: true|false}``.

A write sets the fields a record carries and keeps the stored value of the others (send
``null`` to clear one); the aggregates are never touched here.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from recsys.data.errors import DataValidationError
from recsys.data.records import validate_records
from recsys.data.schemas import USERS, Column, Schema
from recsys.store.checks import id_problem, json_object, unstorable_field
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.privacy import consent_changes, record_consents
from recsys.store.tables import UserProfile, utcnow

logger = logging.getLogger(__name__)

USER_RECORDS = Schema("users", (*USERS.columns, Column("time_zone", "str")), key=("user_id",))
"""What a customer record may carry: the loader's ``USERS`` columns plus ``time_zone``."""
CUSTOMER_FIELDS: tuple[str, ...] = ("email", "country", "time_zone", "consents", "attributes")
AGGREGATES = ("first_seen", "last_seen", "event_count", "purchase_count", "revenue")
# Spelled without \s, whose meaning differs between Python and the ECMA regexes of JSON Schema:
# no controls and no space characters of either (the API spec publishes this same pattern).
_NOT_IN_EMAIL = r"@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EMAIL_PATTERN = rf"^[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}.]+(\.[^{_NOT_IN_EMAIL}.]+)+$"
_EMAIL = re.compile(EMAIL_PATTERN)
_MAX_EMAIL, _MAX_SHORT = 320, 64  # the columns' lengths


def _time_zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
    return None


def _consents_problem(consents: Mapping[str, Any]) -> str | None:
    for channel, given in consents.items():
        if not channel.strip() or len(channel) > _MAX_SHORT:
            return f"channel names must be 1 to {_MAX_SHORT} characters, got {channel!r}"
        if not isinstance(given, bool):
            return f"consents.{channel} must be true or false, got {given!r}"
    return None


def customer_problem(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, problem)`` for the first field of a canonical customer row that cannot be
    stored as it is, or None. ``consents``/``attributes`` are dicts (or None) here."""
    problem = id_problem("user_id", row["user_id"])
    if problem:
        return "user_id", problem
    email = row.get("email")
    if email and (len(email) > _MAX_EMAIL or not _EMAIL.match(email)):
        return "email", f"{email!r} is not an e-mail address"
    for name in ("country", "time_zone"):
        if row.get(name) and len(row[name]) > _MAX_SHORT:
            return name, f"{name} is longer than {_MAX_SHORT} characters"
    if row.get("time_zone"):
        problem = _time_zone_problem(row["time_zone"])
        if problem:
            return "time_zone", problem
    if row.get("consents"):
        problem = _consents_problem(row["consents"])
        if problem:
            return "consents", problem
    return None


def table_row(canonical: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical customer (a row of a validated ``USER_RECORDS`` frame) as a table row."""
    return {
        "user_id": canonical["user_id"],
        "email": (canonical.get("email") or "").strip() or None,
        "country": (canonical.get("country") or "").strip() or None,
        "time_zone": (canonical.get("time_zone") or "").strip() or None,
        "consents": json_object(canonical.get("consents")),
        "attributes": json_object(canonical.get("attributes")),
    }


def write_customers(
    session: Session, rows: Sequence[dict], written: Iterable[str], source: str = "import"
) -> int:
    """Upsert customer rows in the caller's transaction, setting only the ``written`` fields
    of existing customers (plus ``updated_at``); users in id order. Consent changes are
    recorded in the consent history under ``source``."""
    columns = [name for name in CUSTOMER_FIELDS if name in set(written)]
    now = utcnow()
    values = [{**row, "updated_at": now} for row in sorted(rows, key=lambda r: r["user_id"])]
    if not values:
        return 0
    if "consents" in columns:
        ids = [row["user_id"] for row in values]
        stmt = select(UserProfile.user_id, UserProfile.consents).where(UserProfile.user_id.in_(ids))
        before = dict(session.execute(stmt).all())
        changes = [
            change
            for row in values
            for change in consent_changes(
                row["user_id"], before.get(row["user_id"]), row.get("consents"), source, now
            )  # fmt: skip
        ]
        record_consents(session, changes)
    stmt = dialect_insert(session, UserProfile.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={name: stmt.excluded[name] for name in [*columns, "updated_at"]},
    )
    session.execute(stmt, values)
    return len(values)


class CustomerStore:
    """Customer attributes in ``user_profiles``: write one, read one with its aggregates.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(
        self, user_id: str, fields: Mapping[str, Any], *, source: str = "api"
    ) -> dict[str, Any]:
        """Create or update one customer and return it as :meth:`get` does.

        Parameters
        ----------
        user_id : str
        fields : mapping
            Any of :data:`CUSTOMER_FIELDS`; fields left out keep their stored value.
        source : str
            Where a consent change came from (``api``, ``unsubscribe`` ...), for the history.

        Raises
        ------
        DataValidationError
            Naming the field at fault (source ``<request>``); nothing is written.
        """
        unknown = sorted(set(fields) - set(CUSTOMER_FIELDS), key=str)
        if unknown:
            raise DataValidationError(
                "<request>",
                f"unknown field(s) {', '.join(map(repr, unknown))}; expected "
                f"{', '.join(CUSTOMER_FIELDS)} (free-form fields go under 'attributes')",
                column=str(unknown[0]),
            )
        record = {**fields, "user_id": user_id}
        found = unstorable_field(record)
        if found is None:
            frame, rejections = validate_records([record], USER_RECORDS)
            if rejections:
                found = (rejections[0].field, rejections[0].problem)
            else:
                row = table_row(frame.to_dict("records")[0])
                found = customer_problem(row)
        if found is not None:
            raise DataValidationError("<request>", found[1], column=found[0])
        with write_session(self.engine) as session:
            write_customers(session, [row], fields.keys(), source)
        return self.get(user_id)

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Customers whose id starts with ``query`` or whose e-mail is ``query`` (any case),
        by id: what a support agent types to find one customer."""
        query = query.strip()
        if not query:
            return []
        by_id = UserProfile.user_id.startswith(query, autoescape=True)
        by_email = func.lower(UserProfile.email) == query.lower()
        stmt = (
            select(UserProfile.user_id, UserProfile.email, UserProfile.country,
                   UserProfile.last_seen)
            .where(or_(by_id, by_email))
            .order_by(UserProfile.user_id)
            .limit(limit)
        )  # fmt: skip
        with read_session(self.engine) as session:
            return [row._asdict() for row in session.execute(stmt)]

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The customer's attributes plus the profile aggregates, or None when unknown."""
        with read_session(self.engine) as session:
            profile = session.get(UserProfile, user_id)
            if profile is None:
                return None
            return {a.key: getattr(profile, a.key) for a in UserProfile.__mapper__.column_attrs}
