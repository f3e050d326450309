"""Rendering console pages: one Jinja2 environment (autoescaped), the base context of every page,
and chart data handed to the page as JSON in a non-executable ``<script type=application/json>``
block (the Content-Security-Policy allows no inline script)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import HTMLResponse

from serving.console.session import CSRF_FIELD, Viewer

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
NAV = (
    ("overview", "Overview", "/"),
    ("customers", "Customers", "/customers"),
    ("items", "Items", "/items"),
    ("segments", "Segments", "/segments"),
    ("campaigns", "Campaigns", "/campaigns"),
    ("models", "Models", "/models"),
)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def chart_data(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` escaped so
    that no text in it (a customer attribute) can close the block."""
    text = json.dumps(value, default=_json_default, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


TEMPLATES.env.filters.update(json_block=chart_data, number=number, when=when)


def base_url(request: Request) -> str:
    """Where the console is mounted (``/console``), for links and assets."""
    return request.scope.get("root_path", "").rstrip("/")


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    section: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A full page: the template with the viewer, the CSRF field and the navigation."""
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "csrf_field": CSRF_FIELD,
            "csrf": viewer.csrf if viewer else None,
            "base": base_url(request),
            "nav": NAV,
            "section": section,
            **context,
        },
        status_code=status_code,
    )
