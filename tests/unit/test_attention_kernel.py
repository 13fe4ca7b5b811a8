"""rlhf.models.attention: training forwards over short rows run sdpa's math kernel on CPU, and get
the same outputs and gradients as sdpa's own choice (the flash kernel)."""

from __future__ import annotations

import torch
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
    with torch.profiler.profile() as prof:
        fast_logits, fast = grads(model, ids, mask, fast=True)
    names = {e.key for e in prof.key_averages()}
    assert not any("flash" in n for n in names), names
    torch.testing.assert_close(fast_logits, plain_logits, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.profiler.profile() as prof:
        grads(model, ids, mask, fast=False)
    assert any("flash" in e.key for e in prof.key_averages())  # the plain path is the flash kernel
