"""Sequence rewards for `rlhf ppo`: the reward model (with its stored normalisation statistics)
or a Python reward function."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch

from rlhf.data.records import Prompt
from rlhf.recipes.ppo_config import Config
from rlhf.rollout.reward_fn import call_reward_fn
from rlhf.rollout.reward_model import RewardModel

if TYPE_CHECKING:  # hints only
    from transformers import PreTrainedTokenizerBase

    from rlhf.rollout.generate import Generation


class Scorer:
    """Sequence rewards from a reward model (rlhf.rollout.reward_model) or a function.

    ``path`` / ``key``: which reward model, and the config key that named it (rewards.model, or
    rewards.heldout_model for the one that only watches).
    """

    def __init__(
        self,
        cfg: Config,
        tokenizer: PreTrainedTokenizerBase,
        reward_fn: Callable | None,
        device: torch.device | str,
        path: str | None = None,
        key: str = "rewards.model",
    ) -> None:
        self.cfg, self.fn = cfg, reward_fn
        self.rm, self.mean, self.std = None, None, None
        path = cfg.rewards.model if path is None else path
        if path:
            self.rm = RewardModel(
                path, cfg.model, tokenizer, key, device, cfg.rewards.format, "rewards.format"
            )
            if cfg.rewards.normalize:
                if self.rm.statistics is None:
                    print(
                        f"[ppo] rewards.normalize: {key} stores no reward_mean/reward_std; not normalising it"
                    )
                else:
                    self.mean, self.std = self.rm.statistics

    @property
    def model(self) -> torch.nn.Module | None:
        """the reward model's network (None with a reward function)"""
        return self.rm.model if self.rm is not None else None

    def __call__(
        self,
        prompts: list[Prompt],
        prompt_texts: list[str],
        prompt_ids: list[list[int]],
        gens: list[Generation],
        autocast: Callable[[], AbstractContextManager],
        n: int = 1,
    ) -> torch.Tensor:
        """Raw scores; ``prompts`` are the records' prompts, ``prompt_texts`` them rendered for the
        policy. Rows come ``n`` to a prompt (the reward model reads each prompt once when
        rollout.share_prompt allows).  Shape: (N,)"""
        if self.fn is not None:
            return call_reward_fn(
                self.fn,
                prompt_texts,
                [g.text for g in gens],
                [g.finished for g in gens],
                self.cfg.rewards.function or getattr(self.fn, "__qualname__", repr(self.fn)),
                "rewards.function" if self.cfg.rewards.function else "the reward function",
            )
        with autocast():
            return self.rm(prompts, prompt_ids, gens, n, self.cfg.rollout.batch_size)
