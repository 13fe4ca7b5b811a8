"""Fixtures for every test folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def _transformers_warnings() -> Iterator[list[str]]:
    """The messages transformers logs at WARNING or above while the block runs. Its one-time
    warnings (``warning_once``) are forgotten first, so one given earlier in the session shows again."""
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = hf_logging.get_logger()  # transformers' root logger: every module's logger reaches it
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="session")
def transformers_warnings() -> Callable[[], contextmanager]:
    """``with transformers_warnings() as messages:``: what transformers warned of in the block."""
    return _transformers_warnings


CHROMIUM = "/usr/bin/chromium"
"""the browser the UI tests drive (`make browser` installs it)"""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""headless, and nothing that reaches the network on its own: a page's requests are the test's"""


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium (playwright's Browser) shared by a module's browser tests; skips the test
    when Chromium or playwright is missing. Module scope, not session: while playwright's sync API
    is open it holds a running event loop, and a later module's ``asyncio.run`` would refuse to start."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (`make browser` installs it)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
