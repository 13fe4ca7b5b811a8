"""Best-of-n with a reward model: `rlhf best-of-n`.

Samples n responses per prompt, scores them with a reward model, and writes

- ``best.jsonl``: the best response per prompt as a demonstration (``prompt``, ``completion``),
  the data of rejection-sampling fine-tuning (Llama 2; Anthropic's "RS"): `rlhf sft` reads it;
- ``scored.jsonl``: every candidate with its score (``prompt``, ``responses``, ``scores``, ``best``);
- ``summary.json``: mean score of all samples and of the best, and the KL of the best-of-n policy
  to the sampling policy, log n - (n - 1) / n (Stiennon et al. 2020, appendix G.3; an upper bound
  that is exact when the n samples are distinct).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from rlhf.config import ConfigError
from rlhf.models.loading import check_model_path, load_scalar_model, load_tokenizer
from rlhf.recipes.sample import SampleSection, check, generate, write_jsonl_atomic
from rlhf.rollout.scoring import score_groups
from rlhf.sections import ModelConfig


@dataclass
class BestOfNSection:
    reward_model: str = ""
    """reward model directory (AutoModelForSequenceClassification, num_labels=1)"""
    output_dir: str = "runs/best-of-n"
    """where best.jsonl, scored.jsonl and summary.json go"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sample: SampleSection = field(default_factory=lambda: SampleSection(n=16))
    best_of_n: BestOfNSection = field(default_factory=BestOfNSection)


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || sampling policy) = log n - (n - 1) / n, in nats."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def score_generations(
    reward_model_path: str, model_cfg: ModelConfig, tokenizer, gens, batch_size: int, what: str = "best_of_n.reward_model"
) -> list[list[float]]:
    """The reward model's score of every generation, grouped as ``gens`` is (``what``: the config
    key that named the reward model)."""
    rm_tok = load_tokenizer(reward_model_path, what)
    if rm_tok.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"{what} uses another tokenizer than model.path; use one built on the same")
    rm = load_scalar_model(replace(model_cfg, path=reward_model_path, lora_r=0), rm_tok, what)
    flat = [g for gs in gens for g in gs]
    prompts = [g.prompt_ids for g in flat]
    responses = [g.response_ids for g in flat]
    n = len(gens[0]) if gens and all(len(gs) == len(gens[0]) for gs in gens) else 1
    # each prompt read once for its n responses where the reward model allows (rollout/groups.py)
    scores = score_groups(rm.eval(), prompts, responses, n, rm_tok.pad_token_id, batch_size).tolist()
    out, i = [], 0
    for gs in gens:
        out.append(scores[i : i + len(gs)])
        i += len(gs)
    return out


def train(cfg: Config) -> Path:
    """Sample, score, write the three files; returns the output directory."""
    check(cfg.model, cfg.sample)
    if not cfg.best_of_n.reward_model:
        raise ConfigError("best_of_n.reward_model: a reward model directory is required")
    check_model_path(cfg.best_of_n.reward_model, "best_of_n.reward_model")
    torch.manual_seed(cfg.sample.seed)
    records, tokenizer, gens = generate(cfg.model, cfg.sample)
    scores = score_generations(cfg.best_of_n.reward_model, cfg.model, tokenizer, gens, cfg.sample.batch_size)
    out = Path(cfg.best_of_n.output_dir)
    best_rows, scored_rows = [], []
    for rec, gs, ss in zip(records, gens, scores):
        b = max(range(len(ss)), key=ss.__getitem__)
        best_rows.append({"prompt": rec.prompt, "completion": gs[b].text})
        scored_rows.append({"prompt": rec.prompt, "responses": [g.text for g in gs], "scores": ss, "best": b})
    write_jsonl_atomic(out / "best.jsonl", best_rows)
    write_jsonl_atomic(out / "scored.jsonl", scored_rows)
    n = cfg.sample.n
    summary = {
        "prompts": len(records),
        "n": n,
        "mean_score": sum(map(sum, scores)) / sum(map(len, scores)),
        "mean_best_score": sum(max(s) for s in scores) / len(scores),
        "kl_best_of_n": best_of_n_kl(n),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"[best-of-n] {len(records)} prompts x {n}: mean score {summary['mean_score']:+.3f}, "
        f"best {summary['mean_best_score']:+.3f}, KL of best-of-{n} {summary['kl_best_of_n']:.3f} nats -> {out}"
    )
    return out
