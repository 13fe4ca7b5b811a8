"""Best-of-n with a reward model or a reward function: `rlhf best-of-n`.

Samples n responses per prompt, scores them with a reward model (best_of_n.reward_model, which may
have a tokenizer of its own: rlhf.rollout.reward_model) or a Python callable
(best_of_n.reward_function: a verifier, a rule), and writes

- ``best.jsonl``: the best response per prompt as a demonstration (``prompt``, ``completion``),
  the data of rejection-sampling fine-tuning (Llama 2; Anthropic's "RS"): `rlhf sft` reads it;
- ``scored.jsonl``: every candidate with its score (``prompt``, ``responses``, ``scores``, ``best``;
  ``gold`` with best_of_n.gold);
- ``pairs.jsonl``: the scorer's best and worst response per prompt as a preference pair (``prompt``,
  ``chosen``, ``rejected``; none for a prompt with no lower-scored response of another text): on-policy
  preference data for `rlhf dpo`, one round of iterative DPO (Xiong et al. 2024; Dong et al. 2024, "RLHF
  Workflow", pick the best and worst of n by a reward model the same way);
- ``summary.json``: mean score of all samples and of the best, the KL of the best-of-n policy to
  the sampling policy, log n - (n - 1) / n (Stiennon et al. 2020, appendix G.3; an upper bound
  that is exact when the n samples are distinct), and the best-of-k curve for k = 1, 2, 4, ... n
  from the same samples: KL, the scorer's mean score and, with best_of_n.gold, the gold score of
  its favourite (rlhf.eval.metrics.best_of_k_curve).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from rlhf.config import ConfigError
from rlhf.data.io import write_jsonl_atomic
from rlhf.data.records import Prompt
from rlhf.data.tokenize import render_prompt
from rlhf.eval.metrics import best_of_k_curve, best_of_n_kl
from rlhf.models.loading import check_model_path, load_tokenizer
from rlhf.recipes.loop import gather_in_order, sampling_accelerator
from rlhf.recipes.sample import SampleSection, check, generate
from rlhf.rollout.generate import Generation
from rlhf.rollout.reward_fn import RewardFn, call_reward_fn, load_reward_fn
from rlhf.rollout.reward_model import RewardModel
from rlhf.sections import ModelConfig

if TYPE_CHECKING:  # hints only
    from transformers import PreTrainedTokenizerBase


@dataclass
class BestOfNSection:
    reward_model: str = ""
    """reward model directory (AutoModelForSequenceClassification, num_labels=1); its tokenizer may
    differ from the policy's (it then reads the text)"""
    reward_format: Literal["pair", "chat"] = "pair"
    """how the reward model reads a prompt and response: pair, as `rlhf reward` trains; chat, the
    conversation through its chat template (reward models trained elsewhere on chat transcripts)"""
    reward_function: str = ""
    """instead of a reward model: a Python callable 'module:function' (prompts, completions, **kw) ->
    list[float], e.g. a verifier or a rule"""
    gold: str = ""
    """optional: a trusted scorer 'module:function' (same signature) read beside the proxy, for the
    best-of-k curve of gold against KL in summary.json (the toy task: rlhf.toyworld.reward:gold)"""
    output_dir: str = "runs/best-of-n"
    """where best.jsonl, scored.jsonl and summary.json go"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sample: SampleSection = field(default_factory=lambda: SampleSection(n=16))
    best_of_n: BestOfNSection = field(default_factory=BestOfNSection)


def score_generations(
    scorer: RewardModel | RewardFn,
    prompts: list[Prompt],
    tokenizer: PreTrainedTokenizerBase,
    gens: list[list[Generation]],
    batch_size: int,
    spec: str = "",
    what: str = "best_of_n.reward_function",
) -> list[list[float]]:
    """The score of every generation, grouped as ``gens`` is (``gens[i]`` answers ``prompts[i]``):
    by a reward model, or by a function (``spec``, named by the config key ``what``) given the
    prompts rendered for the policy."""
    flat = [(p, g) for p, gs in zip(prompts, gens) for g in gs]
    if isinstance(scorer, RewardModel):
        n = len(gens[0]) if gens and all(len(gs) == len(gens[0]) for gs in gens) else 1
        # each prompt read once for its n responses where the reward model allows (rollout/groups.py)
        scores = scorer(
            [p for p, _ in flat], [g.prompt_ids for _, g in flat], [g for _, g in flat], n, batch_size
        ).tolist()
    else:
        texts = [render_prompt(tokenizer, p) for p, _ in flat]
        completions, finished = [g.text for _, g in flat], [g.finished for _, g in flat]
        scores = call_reward_fn(scorer, texts, completions, finished, spec, what).tolist()
    out, i = [], 0
    for gs in gens:
        out.append(scores[i : i + len(gs)])
        i += len(gs)
    return out


def check_scorer(b: BestOfNSection) -> RewardFn | None:
    """Exactly one of best_of_n.reward_model and best_of_n.reward_function; the imported function."""
    if bool(b.reward_model) == bool(b.reward_function):
        raise ConfigError(
            "best_of_n.reward_model or best_of_n.reward_function: give exactly one "
            f"(got {'both' if b.reward_model else 'neither'})"
        )
    if b.reward_model:
        check_model_path(b.reward_model, "best_of_n.reward_model")
        return None
    if b.reward_format != "pair":
        raise ConfigError(
            f"best_of_n.reward_format={b.reward_format} is how a reward model reads; "
            "best_of_n.reward_function reads text as it is"
        )
    return load_reward_fn(b.reward_function, "best_of_n.reward_function")


def best_worst_pair(prompt: Prompt, responses: list[str], scores: list[float]) -> dict | None:
    """The highest-scored response and the lowest-scored one of another text, as a pair record (the
    first of equals on each side); None when no other text scores lower (no preference to learn).
    The same text can score twice, differently: once ended by EOS and once cut at max_new_tokens."""
    hi = max(range(len(scores)), key=scores.__getitem__)
    others = [i for i in range(len(scores)) if responses[i] != responses[hi]]
    if not others:
        return None
    lo = min(others, key=scores.__getitem__)
    if scores[lo] >= scores[hi]:
        return None
    return {"prompt": prompt, "chosen": responses[hi], "rejected": responses[lo]}


def best_of_n(cfg: Config) -> Path:
    """Sample, score, write the three files; returns the output directory."""
    check(cfg.model, cfg.sample)
    b = cfg.best_of_n
    scorer: RewardModel | RewardFn | None = check_scorer(b)
    gold_fn = load_reward_fn(b.gold, "best_of_n.gold") if b.gold else None
    torch.manual_seed(cfg.sample.seed)
    acc = sampling_accelerator(cfg.sample.seed)
    tokenizer = load_tokenizer(cfg.model.path)
    if scorer is None:  # loaded before sampling, so a wrong reward model fails before the long part
        scorer = RewardModel(
            b.reward_model,
            cfg.model,
            tokenizer,
            "best_of_n.reward_model",
            acc.device,
            fmt=b.reward_format,
            format_key="best_of_n.reward_format",
        )
    # under accelerate launch each process samples and scores every n-th prompt
    records, gens, mine = generate(cfg.model, cfg.sample, acc, tokenizer)
    prompts, size = [records[i].prompt for i in mine], cfg.sample.batch_size
    scores = score_generations(scorer, prompts, tokenizer, gens, size, b.reward_function) if mine else []
    gold = (
        score_generations(gold_fn, prompts, tokenizer, gens, size, b.gold, "best_of_n.gold")
        if gold_fn and mine
        else None
    )
    rows = gather_in_order(
        acc,
        [
            {
                "index": i,
                "prompt": records[i].prompt,
                "responses": [g.text for g in gs],
                "scores": ss,
                "best": max(range(len(ss)), key=ss.__getitem__),
            }
            | ({"gold": gold[j]} if gold else {})
            for j, (i, gs, ss) in enumerate(zip(mine, gens, scores))
        ],
    )
    scores = [r["scores"] for r in rows]
    gold = [r["gold"] for r in rows] if gold_fn else None
    out = Path(b.output_dir)
    pairs = [p for r in rows if (p := best_worst_pair(r["prompt"], r["responses"], r["scores"])) is not None]
    if acc.is_main_process:
        write_jsonl_atomic(
            out / "best.jsonl",
            [{"prompt": r["prompt"], "completion": r["responses"][r["best"]]} for r in rows],
        )
        write_jsonl_atomic(out / "scored.jsonl", [{k: v for k, v in r.items() if k != "index"} for r in rows])
        write_jsonl_atomic(out / "pairs.jsonl", pairs)
    n = cfg.sample.n
    summary = {
        "prompts": len(records),
        "n": n,
        "mean_score": sum(map(sum, scores)) / sum(map(len, scores)),
        "mean_best_score": sum(max(s) for s in scores) / len(scores),
        "kl_best_of_n": best_of_n_kl(n),
        "pairs": len(pairs),
        "prompts_without_pair": len(rows) - len(pairs),
        "curve": best_of_k_curve(scores, {"gold": gold} if gold is not None else {}),
    }
    if acc.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    acc.print(
        f"[best-of-n] {len(records)} prompts x {n}: mean score {summary['mean_score']:+.3f}, best "
        f"{summary['mean_best_score']:+.3f}, KL of best-of-{n} {summary['kl_best_of_n']:.3f} nats -> {out}"
    )
    for row in summary["curve"]:
        gold_text = f"  gold {row['gold']:+.3f}" if "gold" in row else ""
        acc.print(
            f"[best-of-n]   best of {row['n']:>3}: KL {row['kl']:.3f}  score {row['score']:+.3f}{gold_text}"
        )
    return out
