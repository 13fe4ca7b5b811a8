"""Rows of the SmolLM2 demo's table, on held-out prompts, judged by the task's gold rule.

Greedy responses (what a user would see) give the share of harmful requests declined and of
benign look-alikes answered, and the gold reward. KL to SFT and to the base model are estimated on
responses sampled at temperature 1 from the row's model (log pi - log ref summed over tokens,
averaged). What alignment cost: the general questions the base model answered right that the row
still answers right (``general_kept``, filled in by the pipeline), and the token-mean NLL of
held-out general prose (``web_nll``: forgetting).
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from typing import Any

import torch

from rlhf.eval.kl import kl_terms
from rlhf.eval.metrics import best_of_n_kl, kl_summary
from rlhf.eval.nll import text_examples, text_nll
from rlhf.eval.responses import mean_words, no_eos_share, pick_best, sample_and_score
from rlhf.realtask import general
from rlhf.realtask.family import Task
from rlhf.realtask.gold import gold_score, rates
from rlhf.realtask.prompts import chat
from rlhf.recipes.loop import sampling_accelerator
from rlhf.rollout.engine import KVCacheEngine
from rlhf.rollout.generate import Generation, SamplingParams


def autocast(mixed_precision: str):
    """bf16 autocast on the CPU for the evaluation forwards when the preset trains in bf16."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if mixed_precision == "bf16" else nullcontext()


def engine_for(model, tokenizer, mixed_precision: str) -> KVCacheEngine:
    """The rollout engine with its own bf16 copy of ``model`` when the preset computes in bf16."""
    return KVCacheEngine(model, tokenizer, 64, torch.bfloat16 if mixed_precision == "bf16" else None)


def example_indices(tasks: list[Task], seed: int, n: int = 4) -> list[int]:
    """The same held-out prompts for every row's examples: half harmful, half benign."""
    rng = random.Random(f"{seed}:examples")
    harm = [i for i, t in enumerate(tasks) if t.harmful]
    good = [i for i, t in enumerate(tasks) if not t.harmful]
    return rng.sample(harm, min(n // 2, len(harm))) + rng.sample(good, min(n - n // 2, len(good)))


def quality(name: str, tasks: list[Task], gens: list[Generation], seed: int) -> dict[str, Any]:
    """The quality half of a row from one response per task."""
    texts = [g.text for g in gens]
    gold = [gold_score(t, x) for t, x in zip(tasks, texts)]
    r = rates(tasks, texts)
    return {
        "name": name,
        "harmful_declined": r["harmful_declined"],
        "benign_answered": r["benign_answered"],
        # the toy demo's shape, so tools that read its results.json read these rows too
        "family_accuracy": {"harmful": r["harmful_declined"], "benign": r["benign_answered"]},
        "gold_reward": sum(gold) / len(gold),
        "mean_length": mean_words(texts),
        "no_eos_share": no_eos_share(gens),
        "examples": [
            {"prompt": tasks[i].prompt, "response": texts[i], "gold": gold[i]}
            for i in example_indices(tasks, seed)
        ],
        "_gold_scores": gold,
    }


def sampled_kls(
    engine, refs: dict[str, Any], prompt_ids, n: int, max_new_tokens: int, pad_id: int, seed: int
):
    """KL of the engine's model to each of ``refs`` ({"sft": model, ...}) on the same samples."""
    gens = [
        g
        for gs in engine.generate_ids(prompt_ids, SamplingParams(max_new_tokens, n=n, seed=seed))
        for g in gs
    ]
    return {f"kl_to_{key}": kl_summary(kl_terms(gens, ref, pad_id, 16))["kl"] for key, ref in refs.items()}


def general_answers(engine, max_new_tokens: int, questions=general.QUESTIONS) -> list[str]:
    """Each general question's greedy answer (``general.QUESTIONS``, or ``general.DEV_QUESTIONS``)."""
    gens = engine.generate([chat(q) for q, _ in questions], SamplingParams(max_new_tokens, temperature=0.0))
    return [g[0].text for g in gens]


def general_right(engine, max_new_tokens: int, questions=general.QUESTIONS) -> list[bool]:
    """Whether each general question's greedy answer names its answer."""
    texts = general_answers(engine, max_new_tokens, questions)
    return [general.right(a, text) for (_, a), text in zip(questions, texts)]


def web_nll(model, tokenizer, texts=general.HELDOUT_TEXT, name: str = "held-out text") -> float:
    """Token-mean NLL of ``model`` on ``general.HELDOUT_TEXT`` (or ``general.DEV_TEXT``, ``name``
    naming it in errors); every paragraph must be read."""
    longest = max(len(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts) + 2  # + EOS
    examples = text_examples(tokenizer, texts, longest, name)
    if len(examples) != len(texts):  # a paragraph dropped would change what the figure means
        raise ValueError(f"{len(texts) - len(examples)} paragraphs of the {name} were not read whole")
    return text_nll(model, sampling_accelerator(0), examples, tokenizer.pad_token_id, 16)["nll"]


def evaluate_model(
    name: str, model, tokenizer, tasks: list[Task], refs: dict[str, Any], preset, seed: int
) -> dict[str, Any]:
    """One row: quality on ``tasks``, KL to each of ``refs`` (a model is 0 to itself), general
    answers (``_general_right``) and held-out text NLL."""
    engine = engine_for(model, tokenizer, preset.mixed_precision)
    with torch.no_grad(), autocast(preset.mixed_precision):
        greedy = engine.generate(
            [chat(t) for t in tasks], SamplingParams(preset.max_new_tokens, temperature=0.0)
        )
        row = quality(name, tasks, [g[0] for g in greedy], seed)
        others = {k: m for k, m in refs.items() if m is not model}
        row.update({f"kl_to_{k}": 0.0 for k, m in refs.items() if m is model})
        if others:
            ids = [g[0].prompt_ids for g in greedy]
            row.update(
                sampled_kls(
                    engine,
                    others,
                    ids,
                    preset.kl_samples,
                    preset.max_new_tokens,
                    # EOS pads the reference forwards: masked out, and in every model's vocabulary
                    tokenizer.eos_token_id,
                    seed,
                )
            )
        row["_general_right"] = general_right(engine, preset.general_tokens)
        row["web_nll"] = web_nll(model, tokenizer)
    return row


def evaluate_best_of_n(
    name: str, policy, reward_model, tokenizer, tasks: list[Task], preset, seed: int
) -> dict[str, Any]:
    """Best-of-n at inference: n samples from ``policy`` per task, the reward model's favourite.
    Its KL to the policy is the analytic log n - (n - 1) / n (Stiennon et al. 2020)."""
    n = preset.best_of
    engine = engine_for(policy, tokenizer, preset.mixed_precision)
    with torch.no_grad(), autocast(preset.mixed_precision):
        groups, scores = sample_and_score(
            engine,
            reward_model,
            [chat(t) for t in tasks],
            SamplingParams(preset.max_new_tokens, n=n, seed=seed),
            tokenizer.pad_token_id,
        )
    best = [gs[j] for gs, j in zip(groups, pick_best(scores))]
    row = quality(name, tasks, best, seed)
    row["kl_to_sft"] = best_of_n_kl(n)
    return row
