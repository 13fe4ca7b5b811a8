"""Sequence rewards for `rlhf ppo`: the reward model (with its stored normalisation statistics)
or a Python reward function, and the helper that freezes a model for scoring."""

from __future__ import annotations

from dataclasses import replace

import torch

from rlhf.models.loading import load_scalar_model, load_tokenizer
from rlhf.recipes.ppo_config import Config
from rlhf.rollout.reward_fn import call_reward_fn
from rlhf.rollout.scoring import score_groups


def frozen(model):
    """Eval mode, no gradients: a model that is only read (reference, reward model)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Scorer:
    """Sequence rewards from a reward model (re-tokenising if its vocabulary differs) or a function.

    ``path`` / ``key``: which reward model, and the config key that named it (rewards.model, or
    rewards.heldout_model for the one that only watches).
    """

    def __init__(self, cfg: Config, tokenizer, reward_fn, device, path: str | None = None, key: str = "rewards.model"):
        self.cfg, self.tok, self.fn = cfg, tokenizer, reward_fn
        self.model, self.mean, self.std = None, None, None
        path = cfg.rewards.model if path is None else path
        if path:
            self.rm_tok = load_tokenizer(path, key)
            rm_cfg = replace(cfg.model, path=path, lora_r=0)
            self.model = frozen(load_scalar_model(rm_cfg, self.rm_tok, key)).to(device)
            self.same_vocab = self.rm_tok.get_vocab() == tokenizer.get_vocab()
            if cfg.rewards.normalize:
                self.mean = getattr(self.model.config, "reward_mean", None)
                self.std = getattr(self.model.config, "reward_std", None)
                if self.mean is None or not self.std:
                    print(f"[ppo] rewards.normalize: {key} stores no reward_mean/reward_std; not normalising it")
                    self.mean = self.std = None

    def __call__(self, prompt_texts, prompt_ids, gens, autocast, n: int = 1) -> torch.Tensor:
        """Raw scores; rows come ``n`` to a prompt (the reward model reads each prompt once when
        rollout.share_prompt allows).  Shape: (N,)"""
        if self.fn is not None:
            return call_reward_fn(
                self.fn, prompt_texts, [g.text for g in gens], [g.finished for g in gens], self.cfg.rewards.function
            )
        if self.same_vocab:
            p, r = prompt_ids, [g.response_ids for g in gens]
        else:  # a reward model with its own tokenizer reads the text
            p = [self.rm_tok(t, add_special_tokens=False)["input_ids"] for t in prompt_texts]
            r = [self.rm_tok(g.text, add_special_tokens=False)["input_ids"] + [self.rm_tok.eos_token_id] for g in gens]
        with autocast():
            return score_groups(self.model, p, r, n, self.rm_tok.pad_token_id, self.cfg.rollout.batch_size)
