"""Message templates: Jinja2 in a sandboxed environment, subject + text + HTML.

A template sees ``customer`` (e-mail, country, time zone, attributes), ``profile`` (event and
purchase counts, revenue), ``recommendations`` (items chosen at send time: ``item_id``, ``title``,
``category``, ``price``), ``cart`` (the open cart's items), ``campaign`` (id, name),
``trigger`` (the event that enrolled the customer) and ``unsubscribe_url``. Undefined names are
errors, so a typo fails when the template is saved (:func:`compile_template` renders it once
against a sample context), not when the message is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from recsys.errors import InvalidInputError

PARTS = ("subject", "text", "html")
SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": {"user_id": "u1", "email": "ada@example.com", "country": "DE",
                 "time_zone": "Europe/Berlin", "attributes": {}},
    "profile": {"event_count": 12, "purchase_count": 2, "revenue": 80.0},
    "recommendations": [
        {"item_id": "i1", "title": "Sample item", "category": "shoes", "price": 39.9},
        {"item_id": "i2", "title": "Other item", "category": "socks", "price": 4.5},
    ],
    "cart": [{"item_id": "i3", "title": "In the cart", "category": "shoes", "price": 59.0}],
    "campaign": {"id": "c1", "name": "Sample campaign"},
    "trigger": {"event_type": "add_to_cart", "item_id": "i3", "properties": {}},
    "unsubscribe_url": "https://shop.example/unsubscribe?token=sample",
}  # fmt: skip


class TemplateProblem(InvalidInputError):
    """A template that does not compile or render; the message names the part and line."""


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["money"] = lambda v: "" if v is None else f"{float(v):.2f}"
    return env


_PLAIN, _HTML = _environment(False), _environment(True)


@dataclass(frozen=True)
class CompiledTemplate:
    """A template ready to render (``render(context)`` -> subject, text, html)."""

    id: str
    parts: dict[str, Any]

    def render(self, context: dict[str, Any]) -> dict[str, str]:
        """The rendered parts; :class:`TemplateProblem` names the part that failed."""
        out = {}
        for name, template in self.parts.items():
            try:
                out[name] = template.render(context)
            except Exception as exc:  # user code: 1/0, a bad filter argument ... is their error
                raise TemplateProblem(f"{name}: {_describe(exc)}") from None
        out["subject"] = " ".join(out.get("subject", "").split())  # one header line
        return out


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"


def compile_template(template: dict[str, Any], check: bool = True) -> CompiledTemplate:
    """Compile a template dict (``id``, ``subject``, ``text``, ``html``).

    Parameters
    ----------
    template : dict
    check : bool
        Also render it once against :data:`SAMPLE_CONTEXT` (undefined names, bad filters).

    Raises
    ------
    TemplateProblem
        ``<part>: <problem> (line N)`` for the first part that fails.
    """
    template_id = str(template.get("id", ""))
    if not any((template.get(p) or "").strip() for p in ("text", "html")):
        raise TemplateProblem("text: a template needs a text or an html part")
    parts = {}
    for name in PARTS:
        source = template.get(name) or ""
        env = _HTML if name == "html" else _PLAIN
        try:
            parts[name] = env.from_string(source)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            raise TemplateProblem(f"{name}: {exc.message or exc}{where}") from None
    compiled = CompiledTemplate(template_id, parts)
    if check:
        for name, part in parts.items():
            try:
                part.render(SAMPLE_CONTEXT)
            except Exception as exc:  # user code (see render)
                raise TemplateProblem(f"{name}: {_describe(exc)}") from None
    return compiled
