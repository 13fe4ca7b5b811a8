"""Reward functions the PPO tests load by name (``rewards.function=tests.recipes.reward_fns:digits``)."""

from __future__ import annotations


def digits(prompts: list[str], completions: list[str], **kw) -> list[float]:
    """The share of a completion's characters that are digits: dense, and easy to learn."""
    return [sum(c.isdigit() for c in text) / max(len(text), 1) for text in completions]


def brevity(prompts: list[str], completions: list[str], **kw) -> list[float]:
    """Minus the length in characters: a second opinion that disagrees with ``digits`` at times."""
    return [-float(len(text)) for text in completions]


def wrong_length(prompts: list[str], completions: list[str], **kw) -> list[float]:
    return [0.0]


NOT_CALLABLE = 3


def counted_digits(prompts: list[str], completions: list[str], **kw) -> list[float]:
    """``digits``, appending "<pid> <completions>" to the file $RLHF_TEST_CALLS at every call: which
    process scored how many responses."""
    import os

    with open(os.environ["RLHF_TEST_CALLS"], "a") as fh:
        fh.write(f"{os.getpid()} {len(completions)}\n")
    return digits(prompts, completions)
