"""Which attention a training forward runs on CPU.

For a forward that autograd records, sdpa on CPU picks its flash kernel, whose backward is slow
for short rows: with SmolLM2's 9 query and 3 key/value heads of 64 in bf16, one layer's attention
forward and backward took 17 ms with the flash kernel and 8 ms with the math kernel at 4 rows of
96 tokens, 19 and 11 ms at 8 x 64, 16 and 10 ms at 2 x 160, but 36 and 52 ms at 4 x 256 (the math
kernel holds the T x T scores and reads them back). So forwards with grad over at most
MATH_MAX_TOKENS columns run the math kernel's computation; longer rows, no-grad forwards (where
the flash forward is the faster one) and GPUs keep sdpa's own choice.

The math computation runs as ``short_rows_attention`` where transformers dispatches attention
through its registry (Llama, Qwen2, Mistral, GPT-2...), and as sdpa's math kernel elsewhere. It is
the math kernel's own arithmetic (inputs upcast to float32, softmax(q k^T * scale + mask) v, a
row that may attend to nothing gives zeros, the result cast back) in fewer, larger ops: scores as
one batched matmul with the mask as its accumulator. At 8 rows of 64 tokens on SmolLM2 that took
one layer's forward and backward from 12.5 ms (math kernel) to 9.7 ms and the flash kernel's 22 ms,
on the bench machine (about a twentieth of a LoRA DPO step on SmolLM2, bench/bench_real.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

MATH_MAX_TOKENS = 192
"""the longest row (columns a forward reads) that runs the math kernel"""


def use_math_kernel(input_ids: torch.Tensor) -> bool:
    """Whether a forward over ``input_ids`` (B, T) runs sdpa's math kernel (see the module doc)."""
    return (
        input_ids.device.type == "cpu" and torch.is_grad_enabled() and input_ids.shape[-1] <= MATH_MAX_TOKENS
    )


def math_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    scale: float,
    dropout: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v in float32, as sdpa's math kernel computes it; a query that
    may attend to no key gets zeros. ``mask``: bool (True: attend) or additive float, broadcastable
    to (B, H, T, S); ``causal`` (with ``mask`` None): key j visible to query i iff j <= i.

    Shape: query (B, H, T, D), key/value (B, H, S, D) -> (B, H, T, D) in query's dtype
    """
    B, H, T, D = query.shape
    S = key.shape[2]
    if causal:
        mask = torch.ones(T, S, dtype=torch.bool, device=query.device).tril()  # as sdpa: top-left
    if mask is None:
        bias = torch.zeros(1, 1, 1, 1, device=query.device)
    elif mask.dtype == torch.bool:
        bias = torch.zeros(mask.shape, device=query.device).masked_fill_(
            ~mask, torch.finfo(torch.float32).min
        )
    else:
        bias = mask.float()
    bias = bias.expand(B, H, T, S).reshape(B * H, T, S)
    q, k, v = (x.float().reshape(B * H, -1, D) for x in (query, key, value))
    probs = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale).softmax(-1)
    if mask is not None and mask.dtype == torch.bool:
        seen = mask.any(-1, keepdim=True)  # (.., T, 1): False where a query may attend to nothing
        if not bool(seen.all()):
            probs = probs * seen.expand(B, H, T, 1).reshape(B * H, T, 1)
    if dropout:
        probs = torch.nn.functional.dropout(probs, dropout)
    return torch.bmm(probs, v).view(B, H, T, D).to(query.dtype)


def short_rows_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                         **kwargs):  # fmt: skip
    """transformers' sdpa attention function (``sdpa_attention_forward``) with the math
    computation of ``math_attention``; what it does not cover (one query, a soft cap, a position
    bias) goes to transformers' own. Returns (output (B, T, H, D), None)."""
    if query.shape[2] == 1 or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:  # each key/value head read by its query heads, as transformers' repeat_kv
        key, value = (x.repeat_interleave(groups, 1) for x in (key, value))
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = attention_mask is None and bool(is_causal)
    if causal and key.shape[2] > query.shape[2]:  # as transformers: a static cache's unused tail
        key, value = key[:, :, : query.shape[2]], value[:, :, : query.shape[2]]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    mask = attention_mask[..., : key.shape[2]] if attention_mask is not None else None
    out = math_attention(query, key, value, mask, causal, scale, dropout)
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def training_attention(input_ids: torch.Tensor) -> Iterator[None]:
    """Run the forward over ``input_ids`` inside this to give it the faster attention for its
    rows. The backward runs what the forward recorded."""
    if not use_math_kernel(input_ids):
        yield
        return
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    before = ALL_ATTENTION_FUNCTIONS["sdpa"]
    ALL_ATTENTION_FUNCTIONS["sdpa"] = short_rows_attention
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = before
