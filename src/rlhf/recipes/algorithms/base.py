"""What the RL algorithms of `rlhf ppo` have in common: the hooks in which they differ.

The loop (recipes/ppo.py) runs the same steps for every algorithm: generate, score, forwards,
advantages, update, log. An algorithm is a small object that answers the few questions on which
they part; each lives in its own file and is registered by name in ``algorithms/__init__.py``:

    critic            does it learn a value model (values in the rollout, returns, a value loss)?
    group_baseline    is each prompt's group of samples its baseline (samples_per_prompt >= 2)?
    whole_groups      must a minibatch hold each prompt's samples together?
    advantages()      how the batch's scores, log-probs and values become per-token advantages
    token_loss()      a per-token term the update adds to the clipped surrogate (GRPO's KL)
    sequence_loss()   a term over whole responses the update adds (online DPO's pair loss)

Hooks are pure: they read the batch and return tensors; the loop owns models, optimizers and
processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from rlhf.rollout.experience import Experience

if TYPE_CHECKING:  # the recipe's config, for hints only (it imports the registry)
    from rlhf.recipes.ppo_config import AlgoSection, Config


class UpdateTerm(NamedTuple):
    """A loss term over whole responses, and the statistics it reports."""

    loss: torch.Tensor
    """() this micro-batch's share of the minibatch's loss, scaled like the surrogate"""
    stats: dict[str, torch.Tensor]
    """summed over the micro-batches of a log period; logged divided by its own count"""


class Algorithm:
    """Defaults of the hooks; an algorithm overrides the ones in which it differs."""

    name: str = ""
    """the value of algo.name that selects it"""
    critic: bool = False
    """learns a value model (critic.*)"""
    group_baseline: bool = False
    """each prompt's samples are its baseline: needs rollout.samples_per_prompt >= 2; uniform_groups
    (groups whose samples all scored the same, which teach nothing) is logged"""
    whole_groups: bool = False
    """minibatches hold each prompt's samples together even when they are not packed"""
    sequence_advantages: bool = False
    """one advantage per response, so the ratio may be clipped per response (algo.ratio_level)"""
    scale_rewards_note: str | None = None
    """None: algo.scale_rewards applies; otherwise why it does not, for the error message"""
    clipped_surrogate: bool = True
    """the update's policy loss is the clipped surrogate: policy_loss, clipfrac are logged"""

    def check(self, cfg: Config) -> None:
        """Raise ConfigError for a config this algorithm cannot run (beyond the common checks)."""

    def advantages(
        self, exp: Experience, a: AlgoSection, n: int, kl_coef: float, batch_std: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(advantages (B, T), returns (B, T) or None) of a scored rollout batch whose rows come
        ``n`` to a prompt; ``kl_coef`` is the KL controller's value now."""
        raise NotImplementedError

    def minibatch_count(self, mb: Experience, n: int) -> torch.Tensor | None:
        """What ``sequence_loss`` averages over, counted on this process's minibatch (the loop sums
        it over processes); None when there is no such term."""
        return None

    def token_loss(
        self, new_logp: torch.Tensor, part: Experience, a: AlgoSection, kl_coef: float
    ) -> torch.Tensor | None:
        """A per-token term (B, T) added to the surrogate before aggregation, or None."""
        return None

    def sequence_loss(
        self,
        new_logp: torch.Tensor,
        part: Experience,
        n: int,
        kl_coef: float,
        processes: int,
        count: torch.Tensor | None,
    ) -> UpdateTerm | None:
        """A term over whole responses added to the micro-batch's loss, or None; ``count`` is
        ``minibatch_count`` summed over the ``processes``."""
        return None

    def reported_loss(self, stats: dict[str, torch.Tensor]) -> float:
        """The loss the optimizer step checks for being finite, from the summed statistics."""
        return float(stats["policy_loss"] / stats["tokens"])
