"""Helpers of the end-to-end recipe tests: toy arithmetic data, run-directory readers.

The data is a learnable signal: SFT demonstrations "What is a + b?" -> " c." (the answer format
is learnable even if the sums are not, so the loss falls fast), and preferences where the correct
short answer beats a repetitive one, which beats a long off-topic one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


# ---------------------------------------------------------------- data


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def correct(a: int, b: int) -> str:
    return f" {a + b}."


def repetitive(a: int, b: int) -> str:
    return " " + " ".join([str(a + b)] * 6) + "."


def off_topic(a: int, b: int) -> str:
    return " I do not know, maybe ask again later, it is hard to say."


def operands(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(n)]


def demonstrations(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"prompt": question(a, b), "completion": correct(a, b)} for a, b in operands(n, seed)]


def rankings(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rankings of K=3 in shuffled order: correct (1) > repetitive (2) > off-topic (3)."""
    rng = random.Random(seed + 1)
    out = []
    for a, b in operands(n, seed):
        ranked = [(correct(a, b), 1), (repetitive(a, b), 2), (off_topic(a, b), 3)]
        rng.shuffle(ranked)
        out.append(
            {"prompt": question(a, b), "responses": [r for r, _ in ranked], "ranks": [k for _, k in ranked]}
        )
    return out


def pairs(n: int, seed: int = 0, with_prompt: bool = True) -> list[dict[str, Any]]:
    """Pairs correct > repetitive or off-topic; without a prompt, HH-style whole dialogues."""
    out = []
    for i, (a, b) in enumerate(operands(n, seed)):
        chosen, rejected = correct(a, b), (repetitive if i % 2 else off_topic)(a, b)
        if with_prompt:
            out.append({"prompt": question(a, b), "chosen": chosen, "rejected": rejected})
        else:
            dialogue = f"\n\nHuman: {question(a, b)}\n\nAssistant:"
            out.append({"chosen": dialogue + chosen, "rejected": dialogue + rejected})
    return out


def corpus() -> list[str]:
    """Text the test tokenizer is trained on: every string the tests' data can hold."""
    texts = []
    for a in range(10):
        for b in range(10):
            texts += [question(a, b), correct(a, b), repetitive(a, b)]
    texts += [off_topic(0, 0), "\n\nHuman:", "\n\nAssistant:", "too long " * 20]
    return texts


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def sft_overrides(model: Path, train: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"model.path={model}",
        f"data.train={train}",
        f"train.output_dir={out}",
        "data.max_length=64",
        "train.batch_size=4",
        "train.max_steps=20",
        "train.lr=3e-3",
        "train.log_every=1",
        *extra,
    ]


def reward_overrides(model: Path, train: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"model.path={model}",
        f"data.train={train}",
        f"train.output_dir={out}",
        "data.max_length=64",
        "train.batch_size=4",
        "train.max_steps=30",
        "train.lr=3e-3",
        "train.log_every=1",
        *extra,
    ]


def token_mean_nll(model_dir, records) -> float:
    """Token-mean NLL of the completions given their prompts, one record at a time, from HF's own loss."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total, count = 0.0, 0
    for rec in records:
        p = tok(rec.prompt, add_special_tokens=False)["input_ids"]
        c = tok(rec.completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([p + c])
        labels = torch.tensor([[-100] * len(p) + c])
        with torch.no_grad():
            total += model(input_ids=ids, labels=labels).loss.item() * len(c)
        count += len(c)
    return total / count
