"""Turning untrusted text into HTML: Jinja2 with autoescape everywhere, and markdown without raw HTML.

Prompts and responses are model output or user data. They are rendered as markdown by
``markdown_text`` (raw HTML off, so a ``<script>`` is text; unsafe link schemes dropped; images
off; links open in a new tab), and also inserted as escaped text (``{{ text }}``, never
``|safe``) for the page's "raw text" view. Guidelines are markdown rendered by markdown-it with raw
HTML off (a ``<script>`` in them comes out as text) and its default link check (no ``javascript:`` URLs).
"""

from __future__ import annotations

import datetime
import functools
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


@functools.cache
def _untrusted_markdown():
    from markdown_it import MarkdownIt

    # js-default: CommonMark plus tables and strikethrough. html=False escapes raw HTML; markdown-it's
    # validateLink drops javascript:, vbscript:, file: and data: URLs (their link becomes text).
    # breaks=True keeps a model's single newlines as line breaks, as it wrote them.
    md = MarkdownIt("js-default", {"html": False, "linkify": False, "breaks": True})
    md.disable("image")  # no remote fetches from model output: ![x](url) stays text

    def link_open(renderer, tokens, idx, options, env):
        # a link opens in a new tab, so that a rater never leaves a half-ranked task; no referrer
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


def markdown_text(text: str) -> Markup:
    """A prompt or response (model output, untrusted) as markdown -> safe HTML: code blocks, lists,
    tables, emphasis and links render; raw HTML is shown as text; scripts and images never load."""
    return Markup(_untrusted_markdown().render(text or ""))


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
    env.filters.update(
        markdown=markdown, markdown_text=markdown_text, transcript=transcript, when=when, number=number
    )
    env.globals["letters"] = LETTERS
    return env
