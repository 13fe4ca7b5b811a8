"""GRPO (DeepSeekMath, Shao et al. 2024): no critic; each response's advantage is its score minus
its group's mean, divided by algo.scale_rewards' std; the KL to the reference is a k3 term of the
loss (eq. 3), not a reward penalty."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlhf.losses.kl import kl_loss_term
from rlhf.recipes.algorithms.base import Algorithm
from rlhf.rollout.advantages import group_advantages
from rlhf.rollout.experience import Experience

if TYPE_CHECKING:  # the recipe's config, for hints only (it imports the registry)
    from rlhf.recipes.ppo_config import AlgoSection


class GRPO(Algorithm):
    name = "grpo"
    group_baseline = True
    sequence_advantages = True

    def advantages(
        self, exp: Experience, a: AlgoSection, n: int, kl_coef: float, batch_std: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        adv = group_advantages(exp.scores, n, a.scale_rewards, batch_std=batch_std)
        return adv[:, None] * exp.response_mask, None

    def token_loss(
        self, new_logp: torch.Tensor, part: Experience, a: AlgoSection, kl_coef: float
    ) -> torch.Tensor | None:
        return kl_loss_term(new_logp, part.ref_logprobs, kl_coef) if a.reference else None
