"""GGUF files wherever a model path is taken: the policy (model.path + model.gguf_file) and a reward
model (best_of_n.reward_model, rewards.model) given as GGUF files, read through their cached
conversions. The conversion is replaced by a copy of a nano checkpoint (tests/real/ converts the real
SmolLM2), so this checks the wiring in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlhf.cli import main
from rlhf.models import gguf


@pytest.fixture
def as_gguf(tmp_path, monkeypatch):
    """``as_gguf(checkpoint)``: a GGUF-looking file whose conversion is ``checkpoint``."""
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "cache"))
    sources: dict[str, Path] = {}

    def convert(src: Path, out: Path, what: str = "model.path") -> None:
        shutil.copytree(sources[src.name], out, dirs_exist_ok=True)

    monkeypatch.setattr(gguf, "convert", convert)

    def make(checkpoint: Path) -> Path:
        path = tmp_path / "ggufs" / f"{checkpoint.parent.name}-{checkpoint.name}.gguf"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(gguf.GGUF_MAGIC + str(checkpoint).encode())  # distinct content, distinct cache
        sources[path.name] = checkpoint
        return path

    return make


def test_policy_and_reward_model_as_gguf_files(nano_model, reward_model, prompts, as_gguf, tmp_path):
    policy, rm = as_gguf(nano_model), as_gguf(reward_model)
    out = tmp_path / "bon"
    args = [
        f"model.path={policy.parent}",
        f"model.gguf_file={policy.name}",
        f"sample.prompts={prompts}",
        "sample.n=2",
        "sample.max_new_tokens=4",
        f"best_of_n.reward_model={rm}",
        f"best_of_n.output_dir={out}",
    ]
    assert main(["best-of-n", *args]) == 0
    scored = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 64 and all(len(s["scores"]) == 2 for s in scored)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))
    assert len(cached) == 2  # each file converted once, into its own directory
    ppo_out = tmp_path / "ppo"
    ppo_args = [
        f"model.path={policy}",
        f"data.train={prompts}",
        f"train.output_dir={ppo_out}",
        f"rewards.model={rm}",
        "critic.init=reward",
        "train.batch_size=4",
        "train.max_steps=1",
        "rollout.max_new_tokens=4",
    ]
    assert main(["ppo", *ppo_args]) == 0
    assert (ppo_out / "final" / "model.safetensors").is_file()


def test_a_missing_gguf_reward_model_stops_before_any_work(nano_model, prompts, tmp_path, capsys):
    out = tmp_path / "ppo"
    missing = tmp_path / "rm.gguf"
    args = [
        f"model.path={nano_model}",
        f"data.train={prompts}",
        f"train.output_dir={out}",
        f"rewards.model={missing}",
    ]
    assert main(["ppo", *args]) == 2
    assert f"rewards.model: GGUF file {missing} does not exist" in capsys.readouterr().err
    assert not out.exists()
