"""The A/B report of a campaign: per arm sends, deliveries, failures, conversions, conversion rate
(with its 95% Wilson interval) and revenue, uplift over the holdout with a confidence interval
and a two-proportion z-test, and the same counts per day (in total and per arm, with each arm's
conversion rate to date).

A conversion (the campaign's ``conversion`` event, a purchase by default) is attributed to the
last message the customer was sent before it, by any campaign, when that was at most
``attribution_days`` earlier; it counts here when that message was this campaign's. Holdout
customers get no message: their conversions count from the moment they were assigned, unless
another campaign's message came later.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from recsys.campaigns.definitions import Split, parse_campaign
from recsys.errors import NotFoundError
from recsys.store.campaigns import CampaignRow, EnrolmentRow, SendRow
from recsys.store.db import read_session
from recsys.store.tables import Event

Z95 = 1.959963984540054
NO_SPLIT = "all"


def _uplift(conv: int, n: int, base_conv: int, base_n: int) -> dict[str, Any] | None:
    if not n or not base_n:
        return None
    p1, p0 = conv / n, base_conv / base_n
    se = math.sqrt(p1 * (1 - p1) / n + p0 * (1 - p0) / base_n)
    p_value = None
    if 0 < conv + base_conv < n + base_n:
        _, p_value = proportions_ztest([conv, base_conv], [n, base_n])
        p_value = float(p_value)
    return {"absolute": p1 - p0, "ci95": [p1 - p0 - Z95 * se, p1 - p0 + Z95 * se],
            "relative": (p1 - p0) / p0 if p0 else None, "p_value": p_value}  # fmt: skip


def campaign_report(engine: Engine, campaign_id: str) -> dict[str, Any]:
    """The report of ``campaign_id`` (see the module doc).

    Raises
    ------
    NotFoundError
        No such campaign.
    """
    with read_session(engine) as s:
        row = s.get(CampaignRow, campaign_id)
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id!r}")
        campaign = parse_campaign(row.definition)
        window = timedelta(days=campaign.attribution_days)
        holdouts = {
            arm.name for step in campaign.steps.values() if isinstance(step, Split)
            for arm in step.arms if arm.holdout
        }  # fmt: skip
        enrolments = list(s.execute(
            select(EnrolmentRow.user_id, EnrolmentRow.arm, EnrolmentRow.arm_at,
                   EnrolmentRow.enrolled_at).where(EnrolmentRow.campaign_id == campaign_id)
        ))  # fmt: skip
        users = sorted({u for u, *_ in enrolments})
        sends, conversions = [], []
        for start in range(0, len(users), 500):
            chunk = users[start : start + 500]
            sends += s.execute(
                select(SendRow.user_id, SendRow.campaign_id, SendRow.arm, SendRow.status,
                       SendRow.created_at).where(SendRow.user_id.in_(chunk))
            ).all()  # fmt: skip
            conversions += s.execute(
                select(Event.user_id, Event.timestamp, Event.value, Event.quantity).where(
                    Event.user_id.in_(chunk), Event.event_type == campaign.conversion
                )
            ).all()
    arms: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"enrolled": 0, "sends": 0, "delivered": 0, "failed": 0, "suppressed": 0,
                 "conversions": 0, "converted": set(), "revenue": 0.0}
    )  # fmt: skip
    assigned: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    per_arm: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: {"enrolled": 0, "sends": 0, "conversions": 0,
                                     "converted_customers": 0})
    )  # fmt: skip
    for user, arm, arm_at, enrolled_at in enrolments:
        name = arm or NO_SPLIT
        arms[name]["enrolled"] += 1
        per_arm[(arm_at or enrolled_at).date().isoformat()][name]["enrolled"] += 1
        if name in holdouts:
            assigned[user].append((arm_at or enrolled_at, name))
    timeline: dict[str, list[tuple[datetime, str | None]]] = defaultdict(list)
    days: dict[str, dict[str, int]] = defaultdict(lambda: {"sends": 0, "conversions": 0})
    for user, cid, arm, status, at in sends:
        mine = cid == campaign_id
        if mine:
            a = arms[arm or NO_SPLIT]
            a["sends"] += status != "suppressed"
            a["delivered"] += status == "sent"
            a["failed"] += status in ("failed", "dead")
            a["suppressed"] += status == "suppressed"
            days[at.date().isoformat()]["sends"] += status == "sent"
            per_arm[at.date().isoformat()][arm or NO_SPLIT]["sends"] += status == "sent"
        if status == "sent":
            timeline[user].append((at, (arm or NO_SPLIT) if mine else None))
    for user, marks in assigned.items():
        timeline[user].extend(marks)
    for marks in timeline.values():
        marks.sort(key=lambda m: m[0])
    first: dict[tuple[str, str], str] = {}  # (arm, user) -> day of the first conversion
    for user, at, value, _ in conversions:
        marks = timeline.get(user, [])
        i = bisect.bisect_right([m[0] for m in marks], at) - 1
        if i < 0 or at - marks[i][0] > window or marks[i][1] is None:
            continue
        a = arms[marks[i][1]]
        a["conversions"] += 1
        a["converted"].add(user)
        a["revenue"] += float(value or 0.0)
        day = at.date().isoformat()
        days[day]["conversions"] += 1
        per_arm[day][marks[i][1]]["conversions"] += 1
        first[(marks[i][1], user)] = min(day, first.get((marks[i][1], user), day))
    for (name, _), day in first.items():
        per_arm[day][name]["converted_customers"] += 1
    base = next(iter(holdouts & set(arms)), None)
    out = []
    for name, a in sorted(arms.items()):
        converted = len(a.pop("converted"))
        rate = converted / a["enrolled"] if a["enrolled"] else 0.0
        ci = None  # Wilson: sound at the small counts and the rates near 0 campaigns have
        if a["enrolled"]:
            ci = [float(x) for x in proportion_confint(converted, a["enrolled"], method="wilson")]
        entry = {"arm": name, "holdout": name in holdouts, **a, "converted_customers": converted,
                 "conversion_rate": rate, "conversion_rate_ci95": ci, "uplift": None}  # fmt: skip
        out.append(entry)
    if base is not None:
        b = next(e for e in out if e["arm"] == base)
        for entry in out:
            if entry["arm"] != base:
                entry["uplift"] = _uplift(entry["converted_customers"], entry["enrolled"],
                                          b["converted_customers"], b["enrolled"])  # fmt: skip
    return {
        "campaign_id": campaign_id,
        "conversion": campaign.conversion,
        "attribution_days": campaign.attribution_days,
        "arms": out,
        "days": _days(days, per_arm, sorted(arms)),
    }


def _days(days: dict, per_arm: dict, names: list[str]) -> list[dict[str, Any]]:
    """Per day: the totals, and per arm that day's counts with the arm's conversion rate to
    date (customers converted so far / enrolled so far, the arms' rate as of that day)."""
    out, enrolled, converted = [], dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for day in sorted(set(days) | set(per_arm)):
        by_arm = {}
        for name in names:
            counts = dict(
                per_arm.get(day, {}).get(name)
                or {"enrolled": 0, "sends": 0, "conversions": 0, "converted_customers": 0}
            )
            enrolled[name] += counts["enrolled"]
            converted[name] += counts["converted_customers"]
            rate = converted[name] / enrolled[name] if enrolled[name] else None
            by_arm[name] = {**counts, "conversion_rate_to_date": rate}
        totals = days.get(day, {"sends": 0, "conversions": 0})
        out.append({"date": day, **totals, "arms": by_arm})
    return out
