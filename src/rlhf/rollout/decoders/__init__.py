"""Decoders: the engine's own inference copy of a policy, one implementation per model family.

A decoder runs prefill and one-token decode steps over its own KV cache, and nothing else: no
module tree, no hooks, no cache objects, about 15 tensor ops per layer and step. On small models
Hugging Face's per-op Python overhead, not the matmuls, is most of a decode step, so this is where
the speed comes from (as in vLLM, which also keeps per-architecture model code).

``build_decoder`` picks the fast implementation for the model's family and otherwise falls back
to ``GenericDecoder`` (the model's own forward with a ``DynamicCache``), so any causal LM works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from rlhf.rollout.decoders.generic import GenericDecoder
from rlhf.rollout.decoders.gpt2 import GPT2Decoder
from rlhf.rollout.decoders.llama import LlamaDecoder
from rlhf.rollout.decoders.lora import lora_base


class Decoder(Protocol):
    name: str
    """which implementation runs ("gpt2", "llama", "generic")"""
    device: torch.device

    def load(self, model) -> None:
        """Copy the model's current weights into the decoder's own copy (in place)."""

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        """Run left-padded prompts, fill the cache, repeat each row ``repeats`` times.

        Shape: ids, mask (B, T) -> next-token logits (B * repeats, V) float32, rows in order
        prompt 0 x repeats, prompt 1 x repeats, ...
        """

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per active row.  Shape: (B,) -> next-token logits (B, V) float32"""

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these active rows (indices into the current ones), in this order."""


FAST: dict[str, Callable[..., Decoder]] = {
    "GPT2LMHeadModel": GPT2Decoder,
    "LlamaForCausalLM": LlamaDecoder,
    "Qwen2ForCausalLM": LlamaDecoder,
    "MistralForCausalLM": LlamaDecoder,
}
"""model class name -> fast decoder (a peft LoRA model is looked up by the model it wraps)"""
LORA_READY = {LlamaDecoder}
"""fast decoders that merge LoRA adapters into their weights (decoders.lora)"""


def build_decoder(model, dtype: torch.dtype, generic: bool = False) -> Decoder:
    """The fast decoder for ``model``'s class when there is one that supports its config (and
    ``generic`` is False), else the generic HF-forward one. A LoRA-wrapped model gets the fast
    decoder of the model under it, with the adapters merged, where that decoder can merge them."""
    base = lora_base(model)
    make = None if base is None else FAST.get(type(base).__name__)
    if make is not None and base is not model and make not in LORA_READY:
        make = None
    if make is not None and not generic:
        reason = make.unsupported(base.config)
        if reason is None:
            return make(model, dtype)
    return GenericDecoder(model, dtype)


__all__ = ["Decoder", "GPT2Decoder", "GenericDecoder", "LlamaDecoder", "build_decoder"]
