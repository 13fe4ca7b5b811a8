"""Fixtures of the end-to-end recipe tests: a nano checkpoint and toy data files.

Everything is built here, nothing is downloaded: the tokenizer (~300 tokens) is trained on the
tests' own text and the model is a randomly initialised "nano" GPT-2 (~0.1M parameters), so a
run of tens of steps takes a second or two on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import corpus, demonstrations, pairs, question, rankings, reward_overrides, write_jsonl

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def nano_model(tmp_path_factory) -> Path:
    """A nano GPT-2 checkpoint with a ~300-token BPE tokenizer trained on the test corpus."""
    from rlhf.models.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("nano"), corpus(), vocab_size=300)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """JSONL files every test can read (tests that need odd data write their own)."""
    d = tmp_path_factory.mktemp("data")
    write_jsonl(d / "demos.jsonl", demonstrations(64, seed=0))
    write_jsonl(d / "demos_eval.jsonl", demonstrations(16, seed=1))
    write_jsonl(d / "rankings.jsonl", rankings(48, seed=0))
    write_jsonl(d / "rankings_eval.jsonl", rankings(16, seed=1))
    write_jsonl(d / "pairs.jsonl", pairs(48, seed=0))
    write_jsonl(d / "pairs_eval.jsonl", pairs(16, seed=1))
    write_jsonl(d / "hh.jsonl", pairs(48, seed=0, with_prompt=False))
    write_jsonl(d / "hh_eval.jsonl", pairs(16, seed=1, with_prompt=False))
    return d


@pytest.fixture(scope="session")
def prompts(tmp_path_factory) -> Path:
    """64 "What is a + b?" prompts for the RL recipes (test_sample.py has its own)."""
    d = tmp_path_factory.mktemp("prompts")
    return write_jsonl(d / "prompts.jsonl", [{"prompt": question(a, b)} for a in range(8) for b in range(8)])


@pytest.fixture(scope="session")
def reward_model(nano_model, data_dir, tmp_path_factory) -> Path:
    """A reward model trained for 10 steps on the test rankings (with its stored statistics)."""
    from rlhf.config import load_config
    from rlhf.recipes import reward

    out = tmp_path_factory.mktemp("rm") / "rm"
    cfg = load_config(
        reward.Config,
        None,
        reward_overrides(nano_model, data_dir / "rankings.jsonl", out, "train.max_steps=10"),
    )
    return reward.train(cfg)


@pytest.fixture(scope="session")
def foreign_reward_model(data_dir, tmp_path_factory) -> Path:
    """A reward model of another family (a nano Llama) with a tokenizer of its own (~260 tokens)."""
    from rlhf.config import load_config
    from rlhf.models.tiny import make_tiny_checkpoint
    from rlhf.recipes import reward

    d = tmp_path_factory.mktemp("foreign")
    base = make_tiny_checkpoint(d / "base", corpus(), arch="llama", vocab_size=260, seed=1)
    cfg = load_config(
        reward.Config,
        None,
        reward_overrides(base, data_dir / "rankings.jsonl", d / "rm", "train.max_steps=10"),
    )
    return reward.train(cfg)
