"""Turning untrusted text into HTML: Jinja2 with autoescape everywhere, and markdown without raw HTML.

Prompts and responses are model output or user data: they are only ever inserted as escaped
text (``{{ text }}``, never ``|safe``), shown with ``white-space: pre-wrap`` so that they look as
written. Guidelines are markdown rendered by markdown-it with raw HTML off (a ``<script>`` in
them comes out as text) and its default link check (no ``javascript:`` URLs).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def markdown(text: str) -> Markup:
    """Guidelines markdown -> HTML, with any raw HTML in it escaped."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("js-default", {"html": False, "linkify": False}).render(text or ""))


def transcript(prompt: Any) -> list[dict[str, str]]:
    """A prompt as a list of turns to show: a string is one user turn without a role label."""
    if isinstance(prompt, str):
        return [{"role": "", "content": prompt}]
    return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in prompt]


def when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def number(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(markdown=markdown, transcript=transcript, when=when, number=number)
    env.globals["letters"] = LETTERS
    return env
