"""One step of sft, reward, dpo and ppo (critic.init=shared) on SmolLM2-135M-Instruct, with LoRA, in
bf16, on short sequences, each given the GGUF file itself as model.path (the cached conversion is
read): the run finishes, its losses are finite, and the saved model differs from the start."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open

from rlhf.cli import main
from tests.recipes.helpers import demonstrations, pairs, question, rankings, read_metrics, write_jsonl

COMMON = [
    "model.dtype=bfloat16",
    "model.lora_r=8",
    "model.lora_alpha=16",
    "model.lora_target_modules=q_proj,v_proj",  # fewer adapters: a cheaper step and merge
    "train.max_steps=1",
    "train.batch_size=2",
    "train.lr=1e-2",
    "train.log_every=1",
]
LOSSES = {"loss", "policy_loss", "value_loss", "kl"}
WATCHED = "model.layers.0.self_attn.q_proj.weight"  # a LoRA-adapted weight, merged into final/


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("real-data")
    write_jsonl(d / "demos.jsonl", demonstrations(4))
    write_jsonl(d / "rankings.jsonl", rankings(2))
    write_jsonl(d / "pairs.jsonl", pairs(4))
    write_jsonl(d / "prompts.jsonl", [{"prompt": question(a, 1)} for a in range(4)])
    return d


def weight(directory, name: str) -> torch.Tensor:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return f.get_tensor(name)


def check_run(out, smollm_dir, name: str = WATCHED):
    for row in read_metrics(out):
        for key in LOSSES & row.keys():
            assert math.isfinite(row[key]), (key, row)
    after = weight(out / "final", name)
    assert after.dtype == torch.bfloat16
    assert not torch.equal(after, weight(smollm_dir, name).to(torch.bfloat16)), "the step changed nothing"


@pytest.mark.parametrize(
    "verb,args",
    [
        ("sft", ["data.train={d}/demos.jsonl", "data.max_length=24"]),
        ("reward", ["data.train={d}/rankings.jsonl", "data.max_length=24"]),
        ("dpo", ["data.train={d}/pairs.jsonl", "data.max_length=24"]),
        (
            "ppo",
            [
                "data.train={d}/prompts.jsonl",
                "critic.init=shared",
                "rollout.max_new_tokens=4",
                "rewards.function=tests.recipes.reward_fns:digits",
            ],
        ),
    ],
)
def test_one_lora_step_in_bf16(verb, args, smollm_gguf, smollm_dir, data, tmp_path):
    out = tmp_path / verb
    given = [a.format(d=data) for a in args]
    assert main([verb, f"model.path={smollm_gguf}", f"train.output_dir={out}", *COMMON, *given]) == 0
    check_run(out, smollm_dir)
