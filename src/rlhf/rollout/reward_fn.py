"""Rewards for RL: a reward model, or a plain Python callable given as ``module:function``.

A reward callable has the signature ``fn(prompts: list[str], completions: list[str], **kw) ->
list[float]`` (the convention TRL's reward functions use too); ``kw`` carries ``finished`` (the
response ended with EOS). It is imported when the config is checked, so a typo fails before
any model is loaded.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from rlhf.config import ConfigError

RewardFn = Callable[..., list[float]]


def load_reward_fn(spec: str, what: str = "rewards.function") -> RewardFn:
    """Import ``module:function``; the current directory is on the path, like ``python -m``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what}: expected 'module:function', got {spec!r}")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # an import error of any kind is the user's to fix
        raise ConfigError(
            f"{what}: cannot import module {module_name!r}: {type(err).__name__}: {err}"
        ) from err
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"{what}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ConfigError(f"{what}: {spec!r} is a {type(fn).__name__}, not a function")
    return fn


def call_reward_fn(
    fn: RewardFn,
    prompts: list[str],
    completions: list[str],
    finished: list[bool],
    spec: str,
    what: str = "rewards.function",
) -> torch.Tensor:
    """Call a reward function and check what it returned (``what``: the config key that named it).

    Shape: (N,)"""
    out = fn(prompts, completions, finished=finished)
    try:
        values = [float(v) for v in out]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{what} {spec!r} must return a list of numbers: {err}") from err
    if len(values) != len(completions):
        raise ConfigError(
            f"{what} {spec!r} returned {len(values)} rewards for {len(completions)} completions"
        )
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{what} {spec!r} returned a non-finite reward for completion {bad[0]}")
    return torch.tensor(values, dtype=torch.float32)
