"""Fixtures shared by the unit tests: a small corpus and a tokenizer trained on it (nothing downloaded)."""

from __future__ import annotations

import random

import pytest

WORDS = (
    "the cat dog bird sat ran on under a mat red blue green big small hello there go away "
    "what is one two three four five plus equals yes no please thank you human assistant"
).split()


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    """A few hundred short sentences over a small vocabulary, reproducible (seed 0)."""
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + "." for _ in range(400)]


@pytest.fixture(scope="session")
def tiny_tokenizer(corpus):
    """A byte-level BPE tokenizer from rlhf.models.tiny: pad, eos, bos and a chat template."""
    from rlhf.models.tiny import train_tokenizer

    return train_tokenizer(corpus, vocab_size=512)
