"""Every verb in model.dtype=bfloat16, with and without LoRA, on a nano Llama (GQA, tied embeddings,
the architecture of SmolLM2): one or two steps each, checking the run trains (the weights move, the
losses are finite), saves bf16 weights, and that sample, best-of-n, eval and serve read it.

tests/real/ runs a few of these on the real SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhf.cli import main

from .helpers import corpus, load_weights, read_metrics, sft_overrides

DIGITS = "tests.recipes.reward_fns:digits"
LORA = {"full": [], "lora": ["model.lora_r=4", "model.lora_alpha=8"]}
BF16 = ["model.dtype=bfloat16"]
PPO_VARIANTS = {
    "ppo-policy": ["critic.init=policy"],
    "ppo-shared": ["critic.init=shared", "critic.vf_coef=0.5"],
    "ppo-reward": ["critic.init=reward"],
    "grpo": ["algo.name=grpo", "rollout.samples_per_prompt=2"],
    "rloo": ["algo.name=rloo", "rollout.samples_per_prompt=2"],
    "online_dpo": ["algo.name=online_dpo", "rollout.samples_per_prompt=2"],
}


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A nano Llama: 2 query heads, 1 key/value head, tied embeddings."""
    from rlhf.models.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("llama"), corpus(), arch="llama", vocab_size=300)


@pytest.fixture(scope="module")
def bf16_reward_model(llama, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rm"
    args = sft_overrides(llama, data_dir / "rankings.jsonl", out, *BF16, "train.max_steps=2")
    assert main(["reward", *args]) == 0
    return out / "final"


def check_trained_in_bf16(start, out, loss_keys):
    """Final weights are bf16 and moved from the start; every logged loss is finite."""
    before, after = load_weights(start), load_weights(out / "final")
    assert {w.dtype for w in after.values()} == {torch.bfloat16}
    moved = [k for k in before if k in after and not torch.equal(before[k].to(after[k].dtype), after[k])]
    assert moved, "no weight changed in training"
    for row in read_metrics(out):
        for key in loss_keys & row.keys():
            assert math.isfinite(row[key]), (key, row)


@pytest.mark.parametrize("lora", LORA)
@pytest.mark.parametrize("verb,data", [("sft", "demos"), ("reward", "rankings"), ("dpo", "pairs")])
def test_offline_verbs_train_in_bf16(verb, data, lora, llama, data_dir, tmp_path):
    out = tmp_path / verb
    args = sft_overrides(llama, data_dir / f"{data}.jsonl", out, *BF16, *LORA[lora], "train.max_steps=2")
    assert main([verb, *args]) == 0
    check_trained_in_bf16(llama, out, {"loss"})


@pytest.mark.parametrize("lora", LORA)
@pytest.mark.parametrize("variant", PPO_VARIANTS)
def test_rl_verbs_train_in_bf16(variant, lora, llama, prompts, bf16_reward_model, tmp_path):
    out = tmp_path / variant
    rewards = (
        f"rewards.model={bf16_reward_model}" if variant == "ppo-reward" else f"rewards.function={DIGITS}"
    )
    args = [
        f"model.path={llama}",
        f"data.train={prompts}",
        f"train.output_dir={out}",
        "train.batch_size=4",
        "train.max_steps=2",
        "train.lr=3e-3",
        "rollout.max_new_tokens=4",
        rewards,
        *BF16,
        *LORA[lora],
        *PPO_VARIANTS[variant],
    ]
    assert main(["ppo", *args]) == 0
    check_trained_in_bf16(llama, out, {"policy_loss", "value_loss", "loss", "kl"})


@pytest.mark.parametrize("lora", LORA)
def test_sampling_verbs_read_bf16(lora, llama, prompts, bf16_reward_model, tmp_path):
    """sample, best-of-n and eval in bf16 (LoRA settings are ignored by these verbs: nothing trains)."""
    common = [f"model.path={llama}", *BF16, *LORA[lora]]
    sampled = tmp_path / "cands.jsonl"
    sample_args = [f"sample.prompts={prompts}", "sample.n=2", "sample.max_new_tokens=4"]
    assert main(["sample", *common, *sample_args, f"sample.output={sampled}"]) == 0
    assert len(sampled.read_text().splitlines()) == 64
    bon = tmp_path / "bon"
    args = [
        *common,
        *sample_args,
        f"best_of_n.reward_model={bf16_reward_model}",
        f"best_of_n.output_dir={bon}",
    ]
    assert main(["best-of-n", *args]) == 0
    assert all(math.isfinite(s) for row in map(json.loads, open(bon / "scored.jsonl")) for s in row["scores"])
    ev = tmp_path / "eval"
    args = [
        *common,
        f"eval.prompts={prompts}",
        f"eval.reward_model={bf16_reward_model}",
        f"eval.output_dir={ev}",
    ]
    assert main(["eval", *args, "eval.max_new_tokens=4", "eval.kl_samples=1"]) == 0
    assert json.loads((ev / "report.json").read_text())


def test_serve_loads_bf16(llama):
    from rlhf.serve.model import load_chat_model

    chat = load_chat_model(str(llama), dtype="bfloat16", device="cpu")
    assert next(chat.model.parameters()).dtype == torch.bfloat16
