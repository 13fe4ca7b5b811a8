"""A trained reward model scoring a policy's generations: `rlhf ppo`, `rlhf best-of-n`, `rlhf eval`.

How it reads a prompt and a response (``fmt``, the config's ``*reward*_format``):

``pair`` (default), the format `rlhf reward` trains on: the prompt rendered by the reward model's
tokenizer (its chat template for chat messages, with the generation prompt), then the response,
then EOS if the policy ended it. A response cut at max_new_tokens gets no EOS. When the reward
model shares the policy's vocabulary this is exactly the policy's own token ids, which it reads as
they are; with a tokenizer of its own (another family) the text is tokenized again.

``chat``, what reward models trained elsewhere on whole conversations expect (most chat reward
models on the Hub): the conversation, with the response as the assistant's turn, rendered by the
reward model's chat template. A string prompt is the user's message. The template closes the
turn whether or not the policy did; rewards.missing_eos_penalty is the way to mark those.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from rlhf.config import ConfigError
from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt
from rlhf.models.loading import load_scalar_model, load_tokenizer
from rlhf.rollout.generate import Generation
from rlhf.rollout.scoring import score_groups, score_sequences
from rlhf.sections import ModelConfig

FORMATS = ("pair", "chat")


def frozen(model):
    """Eval mode, no gradients: a model that is only read (reference, reward model)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class RewardModel:
    """The reward model at ``path`` (``key``: the config key that named it, for errors), frozen.

    ``model_cfg`` supplies dtype, attention and remote-code settings (its path and LoRA are not
    used); ``policy_tokenizer`` is the tokenizer the generations were sampled with; ``fmt``: how it
    reads a prompt and response (module docstring), ``format_key`` the config key that set it.
    """

    def __init__(
        self,
        path: str,
        model_cfg: ModelConfig,
        policy_tokenizer,
        key: str,
        device=None,
        fmt: str = "pair",
        format_key: str = "",
    ):
        if fmt not in FORMATS:
            raise ConfigError(f"{format_key or 'format'}: {fmt!r} is not one of {', '.join(FORMATS)}")
        self.key, self.fmt = key, fmt
        self.tokenizer = load_tokenizer(path, key)
        if fmt == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"{format_key}=chat: the tokenizer of {key}={path} has no chat template")
        self.model = frozen(
            load_scalar_model(replace(model_cfg, path=path, lora_r=0), self.tokenizer, key, trained=True)
        )
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
        """(prompt ids, response ids) as this reward model reads them (module docstring). In the
        chat format the whole conversation is the prompt part and the response part is empty."""
        if self.fmt == "chat":
            return [self.conversation_ids(prompt, g.text) for prompt, g in zip(prompts, gens)], [
                [] for _ in gens
            ]
        if self.same_vocab:
            return prompt_ids, [g.response_ids for g in gens]
        tok = self.tokenizer
        p = [encode_prompt(tok, prompt) for prompt in prompts]
        r = [
            tok(g.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if g.finished else [])
            for g in gens
        ]
        return p, r

    def conversation_ids(self, prompt: Prompt, response: str) -> list[int]:
        """The chat format: the prompt's messages and the response as the assistant's turn."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        text = self.tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": response}], tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[Prompt],
        prompt_ids: list[list[int]],
        gens: list[Generation],
        n: int = 1,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """Raw score of each generation; ``prompts`` (records' prompts, text or chat messages) and
        ``prompt_ids`` (the policy's tokens) are per generation. Rows that come ``n`` to a prompt
        read it once where the model allows (rollout/groups.py).  Shape: (N,)"""
        p, r = self.token_ids(prompts, prompt_ids, gens)
        if self.fmt == "chat":  # each conversation is its own row: no prompt to share
            return score_sequences(self.model, p, r, self.tokenizer.pad_token_id, batch_size)
        return score_groups(self.model, p, r, n, self.tokenizer.pad_token_id, batch_size)
