"""Shared-prompt rows: one prompt followed by several responses in one sequence.

Each response sees the prompt and its own earlier tokens, never another response, through a 4D
attention mask built from segment ids; its position ids restart where the prompt ends. The model
then returns, for every response, exactly what it returns for the row prompt + response, while the
prompt's columns are computed once instead of once per response. DPO packs its chosen and
rejected responses this way (recipes/dpo_rows.py), RL the n samples of a prompt (rollout/groups.py).

A custom 4D mask replaces the model's own causal mask, so it needs attention that takes one (eager
or sdpa) and rows that fit inside any sliding attention window, which the mask would bypass.
"""

from __future__ import annotations

import torch
from torch import nn

from rlhf.config import ConfigError

SUPPORTED = ("eager", "sdpa")


def segment_mask(seg: torch.Tensor, float_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Attention mask from segment ids (0 prompt, 1.. responses, -1 padding).

    Causal; a response sees the prompt and itself, never another response; padding sees itself
    too, so that no softmax row is empty (its output is never read). ``float_dtype``: an additive
    mask of that dtype (eager attention adds it to the scores); None: boolean (sdpa).

    Shape: (B, T) -> (B, 1, T, T)
    """
    t = seg.size(1)
    q, k = seg[:, :, None], seg[:, None, :]
    causal = torch.ones(t, t, dtype=torch.bool, device=seg.device).tril()
    allowed = causal & (k >= 0) & ((k == q) | (k == 0))
    allowed = (allowed | torch.eye(t, dtype=torch.bool, device=seg.device))[:, None]
    if float_dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=float_dtype, device=seg.device).masked_fill(
        ~allowed, torch.finfo(float_dtype).min
    )


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model under DDP / PEFT / value-head wrappers."""
    while True:
        if hasattr(model, "module"):  # DDP and similar
            model = model.module
        elif hasattr(model, "get_base_model"):  # PEFT
            model = model.get_base_model()
        elif hasattr(model, "config"):
            return model
        elif hasattr(model, "model"):  # rollout.experience.TokenValueModel
            model = model.model
        else:
            return model


def mask_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype segment_mask must build for ``model``: its weights' for eager attention, None
    (boolean) for sdpa."""
    base = base_model(model)
    if base.config._attn_implementation == "eager":
        return base.get_input_embeddings().weight.dtype
    return None


def unsupported(model: nn.Module, longest: int) -> str | None:
    """Why ``model`` cannot run shared-prompt rows of ``longest`` tokens; None when it can."""
    conf = base_model(model).config
    window = getattr(conf, "sliding_window", None) if getattr(conf, "use_sliding_window", True) else None
    if conf._attn_implementation not in SUPPORTED:
        return f"{conf._attn_implementation} attention takes no 4D mask (eager or sdpa do)"
    if window and longest > window:
        return f"a shared-prompt row of {longest} tokens outgrows the sliding window of {window}"
    return None


def check(model: nn.Module, longest: int, key: str) -> None:
    """ConfigError naming ``key`` when ``model`` cannot run shared-prompt rows of ``longest`` tokens."""
    why = unsupported(model, longest)
    if why:
        raise ConfigError(f"{key}: {why}; set {key}=false")
