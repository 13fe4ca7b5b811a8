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

The one home of scoring with a reward model (``score_sequences``, ``score_groups``: its scalar at
each sequence's last token), and of a run's sequence rewards (``Scorer``: the reward model,
normalised, or a Python function). Calling a Python function is rollout/reward_fn.py; turning
scores into the per-token rewards RL optimises is rollout/reward_shaping.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

import torch

from rlhf.config import ConfigError
from rlhf.data.collators import pad
from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt
from rlhf.models import shared_prompt
from rlhf.models.loading import load_scalar_model, load_tokenizer
from rlhf.rollout.experience import TokenValueModel
from rlhf.rollout.generate import Generation
from rlhf.rollout.groups import pack_groups, packing_saves
from rlhf.rollout.reward_fn import call_reward_fn
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


@torch.no_grad()
def score_sequences(
    reward_model, prompts: list[list[int]], responses: list[list[int]], pad_id: int, batch_size: int = 64
) -> torch.Tensor:
    """The reward model's scalar for each prompt + response, read at its last token.  Shape: (N,)"""
    was_training = reward_model.training
    reward_model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        seqs = [
            a + b for a, b in zip(prompts[start : start + batch_size], responses[start : start + batch_size])
        ]
        ids = pad(seqs, pad_id).to(reward_model.device)
        mask = pad([[1] * len(s) for s in seqs], 0).to(reward_model.device)
        out.append(
            reward_model(input_ids=ids, attention_mask=mask, use_cache=False).logits.squeeze(-1).float().cpu()
        )
    reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def score_groups(
    reward_model,
    prompts: list[list[int]],
    responses: list[list[int]],
    n: int,
    pad_id: int,
    batch_size: int = 64,
) -> torch.Tensor:
    """As ``score_sequences``, for rows that come n to a prompt (rows g*n .. g*n+n-1 share one):
    each prompt is read once for its n responses (rollout/groups.py) when the reward model can
    take the 4D mask and that costs fewer FLOPs; otherwise row by row. Up to ``batch_size`` rows
    (whole groups) a forward, so as many forwards packed or not: under FSDP2/ZeRO-3 each forward
    is collective, and processes whose rows decide differently must still run as many.
    Shape: (N,)"""
    base = shared_prompt.base_model(reward_model)
    longest = max((len(p) for p in prompts), default=0) + n * max((len(r) for r in responses), default=0)
    try:
        per_token = TokenValueModel(reward_model)
    except ValueError:  # no body + linear score head to run per position
        per_token = None
    size = max(n, batch_size // n * n)  # whole groups a forward, packed or not
    if (
        n < 2
        or per_token is None
        or shared_prompt.unsupported(reward_model, longest)
        or not getattr(base.config, "hidden_size", None)
        or not packing_saves(prompts, responses, n, base.config.hidden_size)
    ):
        return score_sequences(reward_model, prompts, responses, pad_id, size)
    was_training = reward_model.training
    reward_model.eval()
    out = []
    for start in range(0, len(prompts), size):
        sl = slice(start, start + size)
        g = pack_groups(prompts[sl], responses[sl], n, pad_id, base.config.pad_token_id)
        if g is None:  # these rows do not share their prompts n by n
            out.append(score_sequences(reward_model, prompts[sl], responses[sl], pad_id, size))
            continue
        g = g.to(base.device)
        values = per_token(g.input_ids, g.attention_mask(reward_model), g.position_ids)  # (G, T)
        out.append(values[g.group, g.last].float().cpu())
    reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


class Scorer:
    """The raw sequence rewards of a run, from one source: a Python function (``fn``, called as
    rollout/reward_fn.py does; ``fn_spec`` is the config's ``module:function`` naming it, empty
    for a callable passed from Python) or else the reward model ``rm``. ``mean`` and ``std``: the
    statistics ``rm`` stores, with which its scores are normalised when ``normalize`` asks for it
    (None otherwise; a model without them is said through ``say`` and left unnormalised)."""

    def __init__(
        self,
        rm: RewardModel | None,
        fn: Callable | None = None,
        *,
        fn_spec: str = "",
        normalize: bool = True,
        batch_size: int = 64,
        say: Callable[[str], None] = print,
    ) -> None:
        self.rm, self.fn, self.fn_spec, self.batch_size = rm, fn, fn_spec, batch_size
        self.mean: float | None = None
        self.std: float | None = None
        if rm is not None and normalize:
            if rm.statistics is None:
                say(f"{rm.key} stores no reward_mean/reward_std; not normalising it")
            else:
                self.mean, self.std = rm.statistics

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
        policy. Rows come ``n`` to a prompt (the reward model reads each prompt once when the
        format allows).  Shape: (N,)"""
        if self.fn is not None:
            return call_reward_fn(
                self.fn,
                prompt_texts,
                [g.text for g in gens],
                [g.finished for g in gens],
                self.fn_spec or getattr(self.fn, "__qualname__", repr(self.fn)),
                "rewards.function" if self.fn_spec else "the reward function",
            )
        with autocast():
            return self.rm(prompts, prompt_ids, gens, n, self.batch_size)
