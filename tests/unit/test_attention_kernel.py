"""rlhf.models.attention: training forwards over short rows run the math kernel's computation on CPU
(short_rows_attention), and get the same outputs and gradients as sdpa's own choice (the flash kernel)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf.models import attention
from rlhf.models.attention import training_attention, use_math_kernel


def test_math_kernel_only_for_grad_forwards_over_short_rows_on_cpu():
    short = torch.zeros(4, attention.MATH_MAX_TOKENS, dtype=torch.long)
    assert use_math_kernel(short)
    assert not use_math_kernel(torch.zeros(1, attention.MATH_MAX_TOKENS + 1, dtype=torch.long))
    with torch.no_grad():
        assert not use_math_kernel(short)


def grads(model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, fast: bool):
    model.zero_grad()
    if fast:
        with training_attention(ids):
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    else:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    logits.float().logsumexp(-1).sum().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


def test_math_kernel_forward_and_backward_equal_the_flash_kernel():
    """A grouped-query Llama (4 query heads, 2 key/value heads), left padding included: logits and
    every parameter's gradient agree to float32 rounding with and without training_attention, and
    the math kernel is what ran (the flash kernel is not called inside it)."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")  # fmt: skip
    model = LlamaForCausalLM(cfg)
    ids = torch.randint(0, 64, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4] = 0
    plain_logits, plain = grads(model, ids, mask, fast=False)
    calls = []
    real = attention.math_attention
    attention.math_attention = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with torch.profiler.profile() as prof:
            fast_logits, fast = grads(model, ids, mask, fast=True)
    finally:
        attention.math_attention = real
    assert len(calls) == cfg.num_hidden_layers  # every layer ran short_rows_attention
    names = {e.key for e in prof.key_averages()}
    assert not any("flash" in n for n in names), names
    torch.testing.assert_close(fast_logits, plain_logits, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.profiler.profile() as prof:
        grads(model, ids, mask, fast=False)
    assert any("flash" in e.key for e in prof.key_averages())  # the plain path is the flash kernel


def sdpa_math(q, k, v, mask, causal, scale):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["causal", "bool", "float", "none"])
def test_math_attention_equals_sdpa_math_kernel_with_gradients(dtype, kind):
    """math_attention: the math kernel's outputs and input gradients (a bool mask with a query that
    sees no key included: zeros, as sdpa gives), to rounding."""
    g = torch.Generator().manual_seed(0)
    B, H, T, S, D = 2, 3, 5, 7, 8
    q, k, v = (torch.randn(B, H, n, D, generator=g).to(dtype).requires_grad_() for n in (T, S, S))
    mask, causal = None, kind == "causal"
    if kind == "bool":
        mask = torch.rand(B, 1, T, S, generator=g) > 0.4
        mask[0, 0, 1] = False  # a query that may attend to nothing
    elif kind == "float":
        mask = torch.randn(B, 1, T, S, generator=g).to(dtype)
    grad_out = torch.randn(B, H, T, D, generator=g).to(dtype)
    outs = []
    for fn in (attention.math_attention, sdpa_math):
        out = fn(q, k, v, mask, causal, 0.3)
        outs.append((out.detach(), *torch.autograd.grad(out, (q, k, v), grad_out)))
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, **tol)
    if kind == "bool":
        assert outs[0][0][0, :, 1].abs().sum() == 0
