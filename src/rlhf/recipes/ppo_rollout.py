"""Steps 1 and 2 of `rlhf ppo`'s loop: sample n responses to each prompt, pack them into an
Experience batch, and score them (the training reward, or a reward model that only watches)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch

from rlhf.data.records import Prompt
from rlhf.rollout.experience import Experience, pack_rollouts
from rlhf.rollout.generate import Generation, SamplingParams
from rlhf.rollout.groups import pack_groups, packing_saves
from rlhf.rollout.reward_model import Scorer

if TYPE_CHECKING:  # hints only
    from transformers import PreTrainedTokenizerBase

    from rlhf.rollout.engine import RolloutEngine


class Prompts(NamedTuple):
    """The training prompts: as the records wrote them, rendered for the policy, tokenized."""

    raw: list[Prompt]
    texts: list[str]
    ids: list[list[int]]


class Rollout(NamedTuple):
    """One step's samples on this process; rows come ``n`` to a prompt."""

    prompts: list[Prompt]
    texts: list[str]
    prompt_ids: list[list[int]]
    gens: list[Generation]
    finished: torch.Tensor
    """(B,) bool: the response ended (EOS or a stop string) rather than being cut"""
    n: int
    shared: bool
    """the forwards read each prompt once for its n responses (rollout.share_prompt)"""

    def scores(self, scorer: Scorer, autocast: Callable) -> torch.Tensor:
        """``scorer``'s raw scores of the rows (N,); a reward model reads each prompt once when shared."""
        return scorer(
            self.prompts, self.texts, self.prompt_ids, self.gens, autocast, self.n if self.shared else 1
        )


def generate(
    engine: RolloutEngine,
    params: SamplingParams,
    data: Prompts,
    idx: list[int],
    shared: bool,
    device: torch.device,
) -> Rollout:
    """``params.n`` responses to each prompt ``idx`` of ``data``, sampled by ``engine``."""
    n = params.n
    gens = [g for gs in engine.generate_ids([data.ids[i] for i in idx], params) for g in gs]
    finished = torch.tensor([g.finished for g in gens]).to(device)
    raw, texts, ids = ([column[i] for i in idx for _ in range(n)] for column in data)  # one row a sample
    return Rollout(raw, texts, ids, gens, finished, n, shared)


def pack(
    rollout: Rollout, tokenizer: PreTrainedTokenizerBase, hidden: int | None, device: torch.device
) -> Experience:
    """The rows as an Experience (an empty response reads as EOS); packed one prompt to n
    responses when shared and that costs fewer FLOPs (``hidden``: the model's width, None: never)."""
    prompts, n, pad = rollout.prompt_ids, rollout.n, tokenizer.pad_token_id
    responses = [g.response_ids or [tokenizer.eos_token_id] for g in rollout.gens]
    exp = pack_rollouts(prompts, responses, pad)
    if rollout.shared and hidden and packing_saves(prompts, responses, n, hidden):
        exp.groups = pack_groups(prompts, responses, n, pad, None)
    return exp.to(device)
