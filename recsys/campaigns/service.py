"""Managing campaigns and templates: validate and store definitions (references checked), move
campaigns through their states, enrol over the API, load the shipped YAML files, preview."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from recsys.campaigns import definitions as d
from recsys.campaigns.enrol import enrol
from recsys.campaigns.templates import TemplateProblem, compile_template
from recsys.errors import ConflictError, InvalidInputError, NotFoundError
from recsys.store import Store, write_session

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TRANSITIONS = {
    "draft": {"active", "archived"},
    "active": {"paused", "archived"},
    "paused": {"active", "archived"},
    "archived": set(),
}
EDITABLE = ("draft", "paused")


def _check_id(kind: str, value: str) -> None:
    if not _ID.match(value or ""):
        raise InvalidInputError(
            f"id: {value!r} is not a {kind} id (lower-case letters, digits, '-', '_', '.'; "
            "at most 64 characters, starting with a letter or digit)"
        )


class CampaignService:
    """Campaign and template catalogue over a store.

    Parameters
    ----------
    store : Store
    check_model : callable, optional
        ``reference -> problem or None`` for the ``recommendations.model`` a send step names
        (``campaigns.models.registry_check``); without it model references are not checked.
    """

    def __init__(self, store: Store,
                 check_model: Callable[[str], str | None] | None = None) -> None:  # fmt: skip
        self.store = store
        self.check_model = check_model

    # -- templates ---------------------------------------------------------------------------
    def put_template(self, template: dict[str, Any]) -> dict[str, Any]:
        """Validate (compile and render against a sample) and store a template.

        Raises
        ------
        TemplateProblem
            ``<part>: <problem>``; nothing is stored.
        """
        _check_id("template", template.get("id", ""))
        compile_template(template)
        return self.store.campaigns.put_template(template)

    def preview(self, template: dict[str, Any] | str, context: dict[str, Any]) -> dict[str, str]:
        """Render a template (stored by id, or given) with ``context``."""
        if isinstance(template, str):
            template = self.store.campaigns.template(template)
        return compile_template(template).render(context)

    # -- campaigns ---------------------------------------------------------------------------
    def check(self, definition: Any) -> d.Campaign:
        """Parse a definition and check that its segments, templates and models exist."""
        campaign = d.parse_campaign(definition)
        refs = d.references(campaign)
        segments = {row["id"] for row in self.store.segments.all()}
        for path, segment_id in refs["segments"]:
            if segment_id not in segments:
                raise d.CampaignDefinitionError(path, f"unknown segment {segment_id!r}")
        templates = self.store.campaigns.templates([t for _, t in refs["templates"]])
        for path, template_id in refs["templates"]:
            if template_id not in templates:
                raise d.CampaignDefinitionError(path, f"unknown template {template_id!r}")
            try:
                compile_template(templates[template_id])
            except TemplateProblem as exc:
                raise d.CampaignDefinitionError(path, f"template {template_id!r}: {exc}") from None
        if self.check_model is not None:
            for path, reference in refs["models"]:
                problem = self.check_model(reference)
                if problem:
                    raise d.CampaignDefinitionError(path, problem)
        return campaign

    def create(self, definition: Any, campaign_id: str | None = None, actor: str = "",
               status: str = "draft") -> dict[str, Any]:  # fmt: skip
        """Store a new campaign (as a draft unless ``status`` says otherwise)."""
        campaign = self.check(definition)
        if campaign_id is None:
            slug = re.sub(r"[^a-z0-9]+", "-", campaign.name.lower()).strip("-")[:50] or "campaign"
            campaign_id = f"{slug}-{uuid.uuid4().hex[:8]}"
        _check_id("campaign", campaign_id)
        if status not in d_statuses():
            raise InvalidInputError(f"status: must be one of {d_statuses()}")
        return self.store.campaigns.create(
            {"id": campaign_id, "name": campaign.name, "status": status,
             "definition": d.dump(campaign), "created_by": actor}
        )  # fmt: skip

    def update(self, campaign_id: str, definition: Any) -> dict[str, Any]:
        """Replace the definition of a draft or paused campaign."""
        current = self.store.campaigns.get(campaign_id)
        if current["status"] not in EDITABLE:
            raise ConflictError(
                f"campaign {campaign_id!r} is {current['status']}; pause it before editing"
            )
        campaign = self.check(definition)
        return self.store.campaigns.update(
            campaign_id, {"name": campaign.name, "definition": d.dump(campaign)}
        )

    def set_status(self, campaign_id: str, status: str) -> dict[str, Any]:
        """Move a campaign to ``status`` (draft -> active <-> paused -> archived)."""
        current = self.store.campaigns.get(campaign_id)
        if status not in TRANSITIONS:
            raise InvalidInputError(f"status: must be one of {list(TRANSITIONS)}")
        if status == current["status"]:
            return current
        if status not in TRANSITIONS[current["status"]]:
            raise ConflictError(
                f"campaign {campaign_id!r} is {current['status']}; it cannot become {status}"
            )
        if status == "active":
            self.check(current["definition"])  # a segment or template may have gone since
        return self.store.campaigns.update(campaign_id, {"status": status})

    def trigger(self, campaign_id: str, user_ids: list[str], data: dict | None = None,
                now=None) -> dict[str, Any]:  # fmt: skip
        """Enrol ``user_ids`` in an active campaign with an API trigger."""
        row = self.store.campaigns.get(campaign_id)
        campaign = d.parse_campaign(row["definition"])
        if not isinstance(campaign.trigger, d.ApiTrigger):
            raise ConflictError(
                f"campaign {campaign_id!r} has a {campaign.trigger.type} trigger, "
                "not an api trigger"
            )
        if row["status"] != "active":
            raise ConflictError(f"campaign {campaign_id!r} is {row['status']}, not active")
        from recsys.campaigns.worker import system_clock

        now = now or system_clock()
        users = list(dict.fromkeys(user_ids))
        with write_session(self.store.engine) as s:
            made = enrol(
                s, campaign_id, campaign, [(u, {"api": data or {}}, now) for u in users], now
            )
        return {"campaign_id": campaign_id, "enrolled": made, "skipped": len(users) - made}

    def load_file(self, path: str | Path, activate: bool = True) -> dict[str, Any]:
        """Install a shipped campaign file (``id``, ``templates``, ``definition``) once: its
        templates are (re)written, the campaign is created when missing."""
        doc = yaml.safe_load(Path(path).read_text())
        if not isinstance(doc, dict) or "id" not in doc or "definition" not in doc:
            raise InvalidInputError(f"{path}: expected a mapping with id, templates, definition")
        for template in doc.get("templates") or []:
            self.put_template(template)
        try:
            return self.store.campaigns.get(doc["id"])
        except NotFoundError:
            return self.create(doc["definition"], doc["id"], actor="config",
                               status="active" if activate else "draft")  # fmt: skip


def d_statuses() -> list[str]:
    """The campaign states."""
    return list(TRANSITIONS)


def preview_context(store: Store, user_id: str, item_ids: list[str], settings) -> dict[str, Any]:
    """The template context of ``user_id`` with ``item_ids`` as the recommendations (what a
    send would render, for ``POST /v1/templates/preview``)."""
    from recsys.campaigns.guards import unsubscribe_token
    from recsys.campaigns.recommend import items_by_id
    from recsys.campaigns.sending import PROFILE_FIELDS, profiles
    from recsys.store import read_session

    with read_session(store.engine) as s:
        profile = profiles(s, [user_id]).get(user_id) or {"user_id": user_id}
        catalogue = items_by_id(s, set(item_ids) | set(profile.get("cart") or []))
    token = unsubscribe_token(settings.secret(), user_id, "email")
    return {
        "customer": {k: profile.get(k) for k in ("user_id", "email", "country", "time_zone")}
        | {"attributes": profile.get("attributes") or {}},
        "profile": {k: profile.get(k) for k in PROFILE_FIELDS},
        "recommendations": [catalogue[i] for i in item_ids if i in catalogue],
        "cart": [catalogue[i] for i in profile.get("cart") or [] if i in catalogue],
        "campaign": {"id": "preview", "name": "Preview"},
        "trigger": {},
        "arm": None,
        "unsubscribe_url": f"{settings.public_url.rstrip('/')}/v1/unsubscribe?token={token}",
    }
