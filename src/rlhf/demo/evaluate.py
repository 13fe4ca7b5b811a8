"""Evaluate a policy on the toy world's held-out prompts with the gold scorer.

Quality is measured on greedy responses (what a user of the model would see). KL to SFT is
estimated separately on responses *sampled* from the policy at temperature 1, the only responses
on which the log-ratio estimator is unbiased. Forgetting is the policy's token-mean NLL on held-out
web text (``web_nll``): the pretraining distribution, which alignment should not unlearn.
"""

from __future__ import annotations

import random
from typing import Any

from rlhf.eval.kl import sampled_kl_terms
from rlhf.eval.metrics import (
    best_of_k_curve,
    best_of_n_kl,
    kl_summary,
    mean_best_of_k,
    ordering_accuracy_by_group,
    outcome,
)
from rlhf.eval.nll import text_examples, text_nll
from rlhf.eval.responses import mean_words, no_eos_share, pick_best, sample_and_score
from rlhf.recipes.loop import sampling_accelerator
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams
from rlhf.toyworld import Task, family_accuracy, gold_score


def _row(
    name: str, tasks: list[Task], gens: list, kl_to_sft: float, seed: int, gold: list[float] | None = None
):
    """One row of the results table from one response per task (``gold``: their scores, if known)."""
    texts = [g.text for g in gens]
    gold = gold if gold is not None else [gold_score(t, x) for t, x in zip(tasks, texts)]
    examples = random.Random(seed).sample(range(len(tasks)), min(3, len(tasks)))
    return {
        "name": name,
        "gold_reward": sum(gold) / len(gold),
        "family_accuracy": family_accuracy(tasks, texts),
        "mean_length": mean_words(texts),
        "no_eos_share": no_eos_share(gens),
        "kl_to_sft": kl_to_sft,
        "examples": [{"prompt": tasks[i].prompt, "response": texts[i], "gold": gold[i]} for i in examples],
        "_gold_scores": gold,
    }


def _sample_and_score(
    policy, reward_model, tokenizer, tasks: list[Task], n: int, max_new_tokens: int, seed: int
):
    """n samples per task from ``policy`` and the reward model's score of each, grouped per task."""
    return sample_and_score(
        HFGenerateEngine(policy, tokenizer),
        reward_model,
        [t.prompt for t in tasks],
        SamplingParams(max_new_tokens, n=n, seed=seed),
        tokenizer.pad_token_id,
    )


def web_nll(model, tokenizer, texts: list[str], max_length: int) -> float:
    """Token-mean NLL of ``model`` on ``texts`` (each read from its start; one longer than
    ``max_length`` tokens is left out: rlhf.eval.nll.text_examples)."""
    examples = text_examples(tokenizer, texts, max_length, "web text")
    return text_nll(model, sampling_accelerator(0), examples, tokenizer.pad_token_id, 16)["nll"]


def evaluate_policy(
    name: str,
    model,
    tokenizer,
    tasks: list[Task],
    sft_model,
    max_new_tokens: int,
    kl_samples: int,
    seed: int,
    web: list[str] | None = None,
    max_length: int = 128,
) -> dict[str, Any]:
    """One results row for ``model``; ``web``: held-out web text for ``web_nll`` (of at most
    ``max_length`` tokens)."""
    engine = HFGenerateEngine(model, tokenizer)
    prompts = [t.prompt for t in tasks]
    greedy = [g[0] for g in engine.generate(prompts, SamplingParams(max_new_tokens, temperature=0.0))]
    kl = 0.0
    if model is not sft_model:
        ids = [g.prompt_ids for g in greedy]
        params = SamplingParams(max_new_tokens, n=kl_samples, seed=seed)
        kl = kl_summary(sampled_kl_terms(engine, sft_model, ids, params, tokenizer.pad_token_id))["kl"]
    row = _row(name, tasks, greedy, kl, seed)
    if web:
        row["web_nll"] = web_nll(model, tokenizer, web, max_length)
    return row


def reward_model_accuracy(
    reward_model, policy, tokenizer, tasks: list[Task], k: int, max_new_tokens: int, seed: int
) -> float:
    """Pairwise agreement of the reward model with the gold ordering on K responses sampled from
    ``policy`` for each held-out prompt (pairs with equal gold scores are left out)."""
    return reward_model_accuracies(reward_model, policy, tokenizer, tasks, k, max_new_tokens, seed)[0]


def reward_model_accuracies(
    reward_model, policy, tokenizer, tasks: list[Task], k: int, max_new_tokens: int, seed: int
) -> tuple[float, dict[str, float]]:
    """``reward_model_accuracy`` over every prompt, and over each family's prompts alone
    ({family: accuracy}; a family whose samples all tie on gold has none)."""
    groups, predicted = _sample_and_score(policy, reward_model, tokenizer, tasks, k, max_new_tokens, seed)
    gold = [[gold_score(t, g.text) for g in gs] for t, gs in zip(tasks, groups)]
    return ordering_accuracy_by_group(predicted, gold, [t.family for t in tasks])


def evaluate_best_of_n(
    name: str, policy, reward_model, tokenizer, tasks: list[Task], n: int, max_new_tokens: int, seed: int
) -> tuple[list[dict[str, Any]], list[list[float]], list[list[float]]]:
    """Best-of-n at inference: n samples from ``policy`` per prompt, the reward model's favourite
    kept. Its KL to the policy is the analytic log n - (n - 1) / n (Stiennon et al. 2020).

    A second row, ``"{name} (gold)"``, picks from the same samples by the gold score itself: the
    ceiling that no reward model can beat with these samples, which tells a weak reward model apart
    from a policy whose samples hold nothing better. Returns the rows, and the reward model's and
    the gold scores of every sample (per task), for ``best_of_n_curve``."""
    groups, scores = _sample_and_score(policy, reward_model, tokenizer, tasks, n, max_new_tokens, seed)
    gold = [[gold_score(t, g.text) for g in gs] for t, gs in zip(tasks, groups)]
    rows = []
    for row_name, by in ((name, scores), (f"{name} (gold)", gold)):
        picks = pick_best(by)
        best = [gs[j] for gs, j in zip(groups, picks)]
        picked = [g[j] for g, j in zip(gold, picks)]
        rows.append(_row(row_name, tasks, best, best_of_n_kl(n), seed, picked))
    return rows, scores, gold


def best_of_n_curve(
    scores: list[list[float]], gold: list[list[float]], baseline: list[float]
) -> list[dict[str, float]]:
    """Best-of-k for k = 1, 2, 4, ... n from the best-of-n rows' own samples (rlhf.eval.metrics):
    KL to the sampling policy; the gold reward and the gold win rate against ``baseline`` (SFT's
    greedy gold per task) of the reward model's pick (and its own score); and the win rate and
    gold reward of gold's own pick, the ceiling. Where the two win rates part shows what the reward
    model leaves on the table."""
    wins = [[outcome(g, b) for g in gs] for gs, b in zip(gold, baseline)]
    rows = best_of_k_curve(scores, {"gold": gold, "win_vs_sft": wins})
    return [
        row
        | {
            "gold_pick_win_vs_sft": mean_best_of_k(gold, wins, row["n"]),
            "gold_pick_gold": mean_best_of_k(gold, gold, row["n"]),
        }
        for row in rows
    ]
