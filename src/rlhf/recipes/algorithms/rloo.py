"""RLOO (Ahmadian et al. 2024): no critic; the sequence reward (score minus the KL-coefficient times
the response's KL) of each sample, minus the mean of the other samples of its prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlhf.losses.kl import sequence_kl
from rlhf.recipes.algorithms.base import Algorithm
from rlhf.rollout.advantages import rloo_advantages
from rlhf.rollout.experience import Experience

if TYPE_CHECKING:  # the recipe's config, for hints only (it imports the registry)
    from rlhf.recipes.ppo_config import AlgoSection


class RLOO(Algorithm):
    name = "rloo"
    group_baseline = True
    sequence_advantages = True
    scale_rewards_note = "rloo's baseline is not scaled"

    def advantages(
        self, exp: Experience, a: AlgoSection, n: int, kl_coef: float, batch_std: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = exp.response_mask
        reward = exp.scores - kl_coef * sequence_kl(exp.logprobs, exp.ref_logprobs, mask, a.kl_estimator)
        return rloo_advantages(reward, n)[:, None] * mask, None
