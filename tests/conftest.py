"""Fixtures for every test folder."""

from __future__ import annotations

import logging
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
