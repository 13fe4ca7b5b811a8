"""A trained reward model scoring a policy's generations: `rlhf ppo`, `rlhf best-of-n`, `rlhf eval`.

When the reward model shares the policy's vocabulary it reads the policy's own token ids. When it
has a tokenizer of its own (a reward model of another family), it reads the text, tokenized the
way `rlhf reward` tokenized its training data: the prompt rendered by *its* tokenizer (its chat
template for chat messages), the response text followed by EOS when the policy ended it. A
response cut at max_new_tokens gets no EOS, as in the shared-vocabulary case, so the reward model
sees the same unfinished answer either way.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt
from rlhf.models.loading import load_scalar_model, load_tokenizer
from rlhf.rollout.generate import Generation
from rlhf.rollout.scoring import score_groups
from rlhf.sections import ModelConfig


def frozen(model):
    """Eval mode, no gradients: a model that is only read (reference, reward model)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class RewardModel:
    """The reward model at ``path`` (``key``: the config key that named it, for errors), frozen.

    ``model_cfg`` supplies dtype, attention and remote-code settings (its path and LoRA are not
    used); ``policy_tokenizer`` is the tokenizer the generations were sampled with.
    """

    def __init__(self, path: str, model_cfg: ModelConfig, policy_tokenizer, key: str, device=None):
        self.key = key
        self.tokenizer = load_tokenizer(path, key)
        self.model = frozen(load_scalar_model(replace(model_cfg, path=path, lora_r=0), self.tokenizer, key, trained=True))
        if device is not None:
            self.model.to(device)
        self.same_vocab = self.tokenizer.get_vocab() == policy_tokenizer.get_vocab()

    @property
    def statistics(self) -> tuple[float, float] | None:
        """(mean, std) of its scores on its training data, as `rlhf reward` stores them, or None."""
        mean = getattr(self.model.config, "reward_mean", None)
        std = getattr(self.model.config, "reward_std", None)
        return None if mean is None or not std else (float(mean), float(std))

    def token_ids(
        self, prompts: list[Prompt], prompt_ids: list[list[int]], gens: list[Generation]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """(prompt ids, response ids) as this reward model reads them (module docstring)."""
        if self.same_vocab:
            return prompt_ids, [g.response_ids for g in gens]
        tok = self.tokenizer
        p = [encode_prompt(tok, prompt) for prompt in prompts]
        r = [tok(g.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if g.finished else []) for g in gens]
        return p, r

    @torch.no_grad()
    def __call__(
        self, prompts: list[Prompt], prompt_ids: list[list[int]], gens: list[Generation], n: int = 1, batch_size: int = 64
    ) -> torch.Tensor:
        """Raw score of each generation; ``prompts`` (records' prompts, text or chat messages) and
        ``prompt_ids`` (the policy's tokens) are per generation. Rows that come ``n`` to a prompt
        read it once where the model allows (rollout/groups.py).  Shape: (N,)"""
        p, r = self.token_ids(prompts, prompt_ids, gens)
        return score_groups(self.model, p, r, n, self.tokenizer.pad_token_id, batch_size)
