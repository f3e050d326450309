"""Definitions, templates and tokens: bad input names its JSON path or template part."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from recsys.campaigns.definitions import (
    CampaignDefinitionError,
    QuietHours,
    models,
    parse_campaign,
    references,
)
from recsys.campaigns.guards import (
    BadTokenError,
    quiet_until,
    read_unsubscribe_token,
    unsubscribe_token,
)
from recsys.campaigns.templates import TemplateProblem, compile_template
from tests.recsys.campaigns.conftest import cart_campaign

STEPS = cart_campaign()["steps"]


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        ({"trigger": {"type": "evnt"}}, "definition.trigger", "unknown type 'evnt'"),
        ({"trigger": {"type": "event", "event_type": "clack"}}, "definition.trigger.event_type",
         "must be one of"),
        ({"trigger": {"type": "schedule", "cron": "61 * * * *"}}, "definition.trigger",
         "not a cron expression"),
        ({"start": "nope"}, "definition.start", "no step named 'nope'"),
        ({"steps": {**STEPS, "mail": {**STEPS["mail"], "template": None}}},
         "definition.steps.mail.template", "Input should be a valid string"),
        ({"steps": {**STEPS, "wait": {"type": "wait", "next": "mail"}}}, "definition.steps.wait",
         "positive duration"),
        ({"steps": {**STEPS, "mail": {**STEPS["mail"], "next": "wait"}}},
         "definition.steps.mail.next", "may not loop: wait -> mail -> wait"),
        ({"steps": {**STEPS, "orphan": {"type": "exit"}}}, "definition.steps.orphan",
         "not reachable"),
        ({"steps": {**STEPS, "mail": {**STEPS["mail"], "channel": "webhook"}}},
         "definition.steps.mail", "needs a url"),
        ({"reentry": {"policy": "after_days"}}, "definition.reentry", "days goes with"),
        ({"time_zone": "Mars/Base"}, "definition.time_zone", "unknown time zone"),
        ({"steps": {"wait": {"type": "split", "arms": [{"name": "a", "weight": 1},
                                                       {"name": "a", "weight": 1}]}},
          "start": "wait"}, "definition.steps.wait.arms", "distinct"),
        ({"surprise": 1}, "definition.surprise", "unknown field"),
        ({"steps": {**STEPS, "mail": {**STEPS["mail"], "recommendations": {"model": "a b"}}}},
         "definition.steps.mail.recommendations.model", "should match pattern"),
    ],
)  # fmt: skip
def test_bad_definitions_name_their_path(change, path, problem):
    with pytest.raises(CampaignDefinitionError) as info:
        parse_campaign(cart_campaign(**change))
    assert info.value.path == path and problem in info.value.problem


def test_model_references_are_aliases_or_version_numbers():
    mail = {**STEPS["mail"], "recommendations": {"model": 3}}  # a YAML number is a version
    campaign = parse_campaign(cart_campaign(steps={**STEPS, "mail": mail}))
    assert references(campaign)["models"] == [("definition.steps.mail.recommendations.model", "3")]
    assert models([campaign, parse_campaign(cart_campaign())]) == {"3"}


def test_templates_fail_when_saved():
    for source, part, problem in [
        ({"text": "{{ custmer.email }}"}, "text", "'custmer' is undefined"),
        ({"text": "ok", "subject": "{% if %}"}, "subject", "line 1"),
        ({"text": "{{ ''.__class__.__mro__ }}"}, "text", "unsafe"),
        ({"subject": "only a subject"}, "text", "needs a text or an html part"),
    ]:
        with pytest.raises(TemplateProblem, match=problem) as info:
            compile_template({"id": "t", **source})
        assert str(info.value).startswith(part)
    html = compile_template({"id": "t", "html": "<p>{{ customer.attributes.get('note', '') }}</p>"})
    out = html.render({"customer": {"attributes": {"note": "<script>"}}})
    assert out["html"] == "<p>&lt;script&gt;</p>"  # HTML parts escape


def test_unsubscribe_token_round_trip_and_forgery():
    token = unsubscribe_token(b"k" * 32, "user 1", "email")
    assert read_unsubscribe_token(b"k" * 32, token) == ("user 1", "email")
    for bad in ("", "abc", token[:-1] + "0", token.replace(".", "x")):
        with pytest.raises(BadTokenError):
            read_unsubscribe_token(b"k" * 32, bad)
    with pytest.raises(BadTokenError):
        read_unsubscribe_token(b"other key" * 4, token)


def test_quiet_hours_end_in_the_customers_zone():
    quiet = QuietHours(start=time(21), end=time(8))
    noon = datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert quiet_until(quiet, "Europe/Berlin", noon) is None  # 13:00 there
    assert quiet_until(quiet, "Asia/Tokyo", noon) == datetime(2026, 1, 5, 23, tzinfo=UTC)
    early = datetime(2026, 1, 5, 5, tzinfo=UTC)  # 06:00 in Berlin: ends at 07:00 UTC
    assert quiet_until(quiet, "Europe/Berlin", early) == datetime(2026, 1, 5, 7, tzinfo=UTC)
