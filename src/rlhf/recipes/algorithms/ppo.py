"""PPO (Schulman et al. 2017) as InstructGPT runs it (Ouyang et al. 2022): per-token KL-shaped
rewards (eq. 2), a learned critic, GAE (Schulman et al. 2016), advantages whitened over the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlhf.recipes.algorithms.base import Algorithm
from rlhf.rollout.advantages import gae, whiten
from rlhf.rollout.experience import Experience
from rlhf.rollout.reward_shaping import shape_rewards

if TYPE_CHECKING:  # the recipe's config, for hints only (it imports the registry)
    from rlhf.recipes.ppo_config import AlgoSection


class PPO(Algorithm):
    name = "ppo"
    critic = True
    scale_rewards_note = "algo.whiten_advantages scales ppo's"

    def advantages(
        self, exp: Experience, a: AlgoSection, n: int, kl_coef: float, batch_std: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = exp.response_mask
        rewards, _ = shape_rewards(exp.scores, exp.logprobs, exp.ref_logprobs, mask, kl_coef, a.kl_estimator)
        adv, returns = gae(rewards, exp.values, mask, a.gamma, a.lam)
        return (whiten(adv, mask) if a.whiten_advantages else adv), returns
