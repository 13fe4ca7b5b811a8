"""Responses sampled from a policy: what they look like (length, missing EOS, diversity: the
shapes reward hacking takes), and the reward model's favourite of n (best-of-n at inference)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rlhf.eval.metrics import distinct_n, repetition
from rlhf.rollout.generate import Generation, SamplingParams
from rlhf.rollout.reward_model import score_groups

if TYPE_CHECKING:  # hints only
    import torch

    from rlhf.data.records import Prompt
    from rlhf.rollout.engine import RolloutEngine


def no_eos_share(gens: Sequence[Generation]) -> float:
    """Share of responses that hit max_new_tokens instead of ending (EOS or a stop string)."""
    return sum(not g.finished for g in gens) / len(gens)


def mean_words(texts: Sequence[str]) -> float:
    """Mean response length in whitespace-separated words."""
    return sum(len(x.split()) for x in texts) / len(texts)


def response_stats(gens: Sequence[Generation]) -> dict[str, float]:
    """Length in tokens, share without EOS, distinct-1/2 over all responses, mean share of
    repeated word bigrams within a response."""
    texts = [g.text for g in gens]
    return {
        "length": sum(len(g.response_ids) for g in gens) / len(gens),
        "no_eos_share": no_eos_share(gens),
        "distinct_1": distinct_n(texts, 1),
        **repetition(texts),
    }


def sample_and_score(
    engine: RolloutEngine,
    reward_model: torch.nn.Module,
    prompts: list[Prompt],
    params: SamplingParams,
    pad_id: int,
) -> tuple[list[list[Generation]], list[list[float]]]:
    """``params.n`` samples per prompt from ``engine``'s policy and the reward model's score of
    each (a sequence classifier on the policy's tokens, each prompt read once for its n responses),
    both grouped per prompt."""
    n = params.n
    groups = engine.generate(prompts, params)
    flat = [g for gs in groups for g in gs]
    scores = score_groups(
        reward_model, [g.prompt_ids for g in flat], [g.response_ids for g in flat], n, pad_id
    ).tolist()
    return groups, [scores[i * n : (i + 1) * n] for i in range(len(prompts))]


def pick_best(scores: Sequence[Sequence[float]]) -> list[int]:
    """The index of each prompt's favourite sample by ``scores`` (the first of equals): best-of-n's
    choice."""
    return [max(range(len(s)), key=s.__getitem__) for s in scores]
