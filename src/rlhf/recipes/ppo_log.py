"""What `rlhf ppo` logs after each step (step 6 of the loop), and its samples files.

Statistics summed over the update's micro-batches are divided by their own count: tokens for the
per-token ones, optimizer steps for ptx_*, preference pairs for dpo_*. The rest is read off the
rollout batch: scores, KL to the reference, lengths, missing EOS, uniform groups, and two signs of
reward hacking that need no gold (answers that loop, answers that all look alike).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import torch
from accelerate.utils import gather_object

from rlhf.eval.metrics import repetition
from rlhf.recipes.algorithms import Algorithm
from rlhf.recipes.ppo_config import Config
from rlhf.recipes.ppo_rollout import Rollout
from rlhf.recipes.run_dir import RunDir
from rlhf.rollout.advantages import explained_variance, uniform_groups
from rlhf.rollout.experience import Experience
from rlhf.rollout.reward_model import Scorer
from rlhf.rollout.reward_shaping import postprocess_scores

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator


def step_metrics(
    stats: dict[str, torch.Tensor],
    exp: Experience,
    roll: Rollout,
    raw: torch.Tensor,
    seq_kl: torch.Tensor,
    watcher: Scorer | None,
    cfg: Config,
    algorithm: Algorithm,
    accelerator: Accelerator,
) -> dict[str, float]:
    """The step's means over every process (``stats``: the update's sums, consumed; ``watcher``: a
    reward model that only watches, read here since it trains nothing)."""
    a, n = cfg.algo, cfg.rollout.samples_per_prompt
    tok, pairs = stats.pop("tokens"), stats.pop("pairs", None)
    steps = a.epochs * a.minibatches  # each summed statistic is a mean over steps, pairs or tokens
    local = {
        "score_raw": raw.mean(),
        "score": exp.scores.mean(),
        "kl": seq_kl.mean(),
        "response_length": exp.response_mask.sum(1).mean(),
        "no_eos_share": (~roll.finished).float().mean(),
        **{
            k: v / (steps if k.startswith("ptx") else pairs.clamp(min=1) if k.startswith("dpo_") else tok)
            for k, v in stats.items()
        },
    }
    if watcher is not None:
        with torch.no_grad():
            held = roll.scores(watcher, accelerator.autocast).to(raw.device)
        local["score_heldout_raw"] = held.mean()
        local["score_heldout"] = postprocess_scores(held, roll.finished, watcher.mean, watcher.std).mean()
    if algorithm.group_baseline:  # groups whose samples all scored the same teach nothing
        local["uniform_groups"] = uniform_groups(exp.scores, n).float().mean()
    if not a.reference:
        local.pop("kl")
    out = {k: accelerator.reduce(v.float().reshape(()), "mean").item() for k, v in local.items()}
    out.pop("ptx_steps", None)
    return out


def batch_metrics(
    every: tuple[list, list, list], exp: Experience, critic: bool, batch_std: torch.Tensor | None
) -> dict[str, float]:
    """Metrics of the whole batch, every process's rows (``every``: prompts, completions, scores)."""
    out = dict(repetition(every[1]))
    every_score = torch.tensor(every[2], dtype=torch.float64)  # the whole batch's, every process's
    out["score_raw_std"] = every_score.std().item() if len(every_score) > 1 else 0.0
    if batch_std is not None:  # what algo.scale_rewards=batch divided the advantages by
        out["advantage_scale"] = float(batch_std)
    if critic:
        out["explained_variance"] = explained_variance(exp.values, exp.returns, exp.response_mask)
    return out


def gather_rows(accelerator: Accelerator, *columns: list) -> tuple[list, ...]:
    """Each column's rows from every process, in process order (as they are on one process)."""
    if accelerator.num_processes == 1:
        return columns
    return tuple(gather_object(list(c)) for c in columns)


def write_samples(
    run: RunDir, step: int, prompts: list, completions: list[str], scores: list[float], is_main: bool
) -> None:
    """samples/step-N.jsonl: each rollout's prompt, response and raw score (main process only)."""
    if not is_main:
        return
    path = run.samples / f"step-{step}.jsonl"
    with path.open("w") as fh:
        for p, c, s in zip(prompts, completions, scores):
            fh.write(json.dumps({"prompt": p, "response": c, "score": s}) + "\n")
