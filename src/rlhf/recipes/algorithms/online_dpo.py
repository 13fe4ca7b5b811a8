"""Online DPO (Guo et al. 2024): each prompt's best and worst fresh sample by the reward form a DPO
pair against the reference, with beta = algo.kl_coef (rlhf.losses.online_dpo). No critic and no
advantages: the clipped surrogate sees zeros, so only its entropy bonus (algo.entropy_coef) acts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.losses.groups import group_pairs
from rlhf.losses.online_dpo import online_dpo_loss
from rlhf.recipes.algorithms.base import Algorithm, UpdateTerm
from rlhf.rollout.experience import Experience

if TYPE_CHECKING:  # the recipe's config, for hints only (it imports the registry)
    from rlhf.recipes.ppo_config import AlgoSection, Config


class OnlineDPO(Algorithm):
    name = "online_dpo"
    group_baseline = True
    whole_groups = True  # a pair's two samples must sit in one minibatch
    scale_rewards_note = "online_dpo has no advantages to scale"
    clipped_surrogate = False

    def check(self, cfg: Config) -> None:
        """No ratio to clip and no token losses to aggregate: the keys of those are errors."""
        a, r = cfg.algo, cfg.rollout
        if not a.reference or a.kl_coef <= 0:
            raise ConfigError(
                f"algo.name=online_dpo needs the reference (algo.reference=true) and algo.kl_coef > 0, its "
                f"beta (got reference={a.reference}, kl_coef={a.kl_coef})"
            )
        if a.clip_high or a.loss_agg != "token":
            raise ConfigError(
                "algo.clip_high and algo.loss_agg shape the clipped surrogate; algo.name=online_dpo has none"
            )
        if cfg.train.batch_size % a.minibatches or (a.micro_batch and a.micro_batch % r.samples_per_prompt):
            raise ConfigError(
                "algo.name=online_dpo pairs each prompt's samples, so a minibatch must hold whole prompts "
                "(train.batch_size divisible by algo.minibatches) and algo.micro_batch must be a multiple "
                f"of rollout.samples_per_prompt (got batch_size={cfg.train.batch_size}, "
                f"minibatches={a.minibatches}, micro_batch={a.micro_batch}, "
                f"samples_per_prompt={r.samples_per_prompt})"
            )

    def advantages(
        self, exp: Experience, a: AlgoSection, n: int, kl_coef: float, batch_std: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return torch.zeros_like(exp.response_mask, dtype=exp.logprobs.dtype), None

    def minibatch_count(self, mb: Experience, n: int) -> torch.Tensor | None:
        return group_pairs(mb.scores, n)[2].sum().float()  # prompts with a pair

    def sequence_loss(
        self,
        new_logp: torch.Tensor,
        part: Experience,
        n: int,
        kl_coef: float,
        processes: int,
        count: torch.Tensor | None,
    ) -> UpdateTerm | None:
        dpo = online_dpo_loss(new_logp, part.ref_logprobs, part.response_mask, part.scores, n, kl_coef)
        stats = {
            "pairs": dpo.pairs,
            "dpo_loss": dpo.losses.detach().sum(),
            "dpo_accuracy": dpo.correct,
            "dpo_margin": dpo.margin,
        }
        return UpdateTerm(dpo.losses.sum() * processes / count, stats)

    def reported_loss(self, stats: dict[str, torch.Tensor]) -> float:
        return float(stats["dpo_loss"] / stats["pairs"].clamp(min=1))
