"""rlhf.losses.logprobs against hand-computed values: softmax over two tokens with logits 0 and ln 3
is (1/4, 3/4); and its two forms (logsumexp, log_softmax) against each other."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from rlhf.losses.logprobs import (
    gathered_logprobs,
    masked_kl_to_reference,
    masked_nll,
    next_token_logprobs,
    softmax_logprobs,
    token_logprobs,
)

LOGITS = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]], dtype=torch.float64)  # (1, 2, 2)


def test_token_logprobs_by_hand():
    tokens = torch.tensor([[1, 1]])
    assert_close(
        token_logprobs(LOGITS, tokens), torch.tensor([[math.log(0.75), math.log(0.25)]], dtype=torch.float64)
    )


def test_temperature_divides_the_logits():
    """T = 2: logits 0 and ln 3 / 2, softmax (1, sqrt 3) / (1 + sqrt 3)."""
    s3 = math.sqrt(3.0)
    out = token_logprobs(LOGITS, torch.tensor([[1, 0]]), temperature=2.0)
    assert_close(out, torch.tensor([[math.log(s3 / (1 + s3)), math.log(s3 / (1 + s3))]], dtype=torch.float64))


def test_gathered_reads_several_tokens_a_position_and_bf16_in_float32():
    both = gathered_logprobs(LOGITS, torch.tensor([[[0, 1], [0, 1]]]))
    assert_close(both.exp(), torch.tensor([[[0.25, 0.75], [0.75, 0.25]]], dtype=torch.float64))
    assert token_logprobs(LOGITS.bfloat16(), torch.tensor([[1, 1]])).dtype == torch.float32


def test_softmax_form_by_hand_and_equal_to_the_logsumexp_form():
    both = softmax_logprobs(LOGITS, torch.tensor([[[0, 1], [0, 1]]]))
    assert_close(both.exp(), torch.tensor([[[0.25, 0.75], [0.75, 0.25]]], dtype=torch.float64))
    logits, index = torch.randn(3, 5, 50) * 4, torch.randint(0, 50, (3, 5, 2))
    assert_close(softmax_logprobs(logits, index, 0.7), gathered_logprobs(logits / 0.7, index))
    assert softmax_logprobs(logits.bfloat16(), index).dtype == torch.float32


def test_next_token_logprobs_hand_values():
    logits = torch.log(
        torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]])
    )  # (1, 3, 3)
    labels = torch.tensor([[-100, 1, 0]])
    out = next_token_logprobs(logits, labels)
    torch.testing.assert_close(
        out, torch.tensor([[torch.log(torch.tensor(0.25)), torch.log(torch.tensor(0.1))]])
    )


def test_masked_nll_is_minus_the_summed_next_token_logprobs():
    logits, labels = torch.randn(2, 6, 11), torch.randint(0, 11, (2, 6))
    labels[0, :3] = -100
    labels[1, 4:] = -100
    total, count = masked_nll(logits, labels)
    assert_close(total, -next_token_logprobs(logits, labels).sum())
    assert count.item() == 3 + 3  # labels 1..5 of each row, less the IGNOREd ones


LOG3 = 1.0986122886681098


def test_masked_nll_uniform_logits_is_log_v_per_labelled_token():
    logits = torch.zeros(2, 4, 3)  # (B, T, V): uniform over V = 3
    labels = torch.tensor([[-100, 2, 0, 1], [-100, -100, 1, -100]])
    total, count = masked_nll(logits, labels)
    # labels shift left by one: row 0 predicts [2, 0, 1], row 1 predicts [-100, 1, -100]
    assert_close(total, torch.tensor(4 * LOG3))
    assert count.item() == 4


def test_masked_nll_shifts_by_one_and_ignores_minus_100():
    logits = torch.tensor(
        [
            [
                [0.0, 0.0, math.log(2)],  # softmax (1/4, 1/4, 1/2): predicts label[1] = 2 -> log 2
                [math.log(3), 0.0, 0.0],  # softmax (3/5, 1/5, 1/5): predicts label[2] = 0 -> log 5/3
                [50.0, -50.0, 0.0],  # predicts label[3] = -100: ignored
                [-50.0, 50.0, -50.0],  # last position predicts nothing
            ]
        ]
    )
    labels = torch.tensor([[0, 2, 0, -100]])  # label[0] is never a target
    total, count = masked_nll(logits, labels)
    assert_close(total, torch.tensor(1.2039728043259361))  # log 2 + log 5/3 = log 10/3
    assert count.item() == 2


def test_masked_nll_nothing_labelled():
    total, count = masked_nll(torch.randn(1, 3, 5), torch.full((1, 3), -100))
    assert total.item() == 0.0 and count.item() == 0


def test_masked_nll_reads_bf16_logits_in_float32():
    logits = torch.zeros(1, 3, 3, dtype=torch.bfloat16)
    total, count = masked_nll(logits, torch.tensor([[0, 1, 2]]))
    assert total.dtype == torch.float32
    assert_close(total, torch.tensor(2 * LOG3))


def autograd_gathered(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """gathered_logprobs as plain autograd expressions (its form before its own backward)."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return x.gather(-1, index) - torch.logsumexp(x, dim=-1, keepdim=True)


def test_gathered_gradient_equals_autograd_bit_for_bit():
    """The one-buffer backward gives autograd's values and gradients exactly (bf16, float32, float64
    logits; one and two tokens a position), and equal to rounding where a position lists a token
    twice (the two upstream gradients are added in another order)."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32, torch.float64):
        for s in (1, 2):
            logits = (torch.randn(3, 7, 300, generator=g) * 3).to(dtype)
            index = torch.stack([torch.randperm(300, generator=g)[:s] for _ in range(21)]).view(3, 7, s)
            up = torch.randn(3, 7, s, generator=g, dtype=torch.float64).to(at_least(dtype))
            a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
            autograd_gathered(a, index).backward(up)
            out = gathered_logprobs(b, index)
            out.backward(up)
            assert torch.equal(out, autograd_gathered(logits, index))
            assert b.grad.dtype == dtype and torch.equal(a.grad, b.grad), (dtype, s)
    logits = torch.randn(2, 5, 40, generator=g)
    index = torch.randint(0, 40, (2, 5, 1), generator=g).expand(2, 5, 2)  # the same token twice
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    autograd_gathered(a, index).sum().backward()
    gathered_logprobs(b, index).sum().backward()
    assert_close(a.grad, b.grad, rtol=0, atol=1e-6)


def at_least(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def test_token_logprobs_of_bf16_logits_equal_the_widened_path_bit_for_bit():
    """At temperature 1 token_logprobs hands bf16 logits to gathered_logprobs unwidened (it widens
    a chunk at a time): values and the bf16 gradient equal those of float32 logits widened first,
    over more positions than one chunk (CHUNK_ROWS) holds."""
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 13, 500, generator=g) * 3).to(torch.bfloat16)  # 39 positions: 3 chunks
    tokens = torch.randint(0, 500, (3, 13), generator=g)
    up = torch.randn(3, 13, generator=g)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    widened = autograd_gathered(a.float(), tokens.unsqueeze(-1)).squeeze(-1)
    widened.backward(up)
    out = token_logprobs(b, tokens)
    out.backward(up)
    assert out.dtype == torch.float32 and torch.equal(out, widened.detach())
    assert b.grad.dtype == torch.bfloat16 and torch.equal(a.grad, b.grad)


def test_kl_to_reference_by_hand_and_only_where_labelled():
    """Position 0 is labelled (it predicts label 1): pi = (1/4, 3/4), ref uniform, so KL(ref || pi)
    = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4); the last position predicts nothing."""
    ref = torch.zeros_like(LOGITS)
    kl, n = masked_kl_to_reference(LOGITS, ref, torch.tensor([[-100, 1]]))
    assert n == 1
    assert_close(kl, torch.tensor(0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0), dtype=torch.float64))
    kl, n = masked_kl_to_reference(LOGITS, ref, torch.tensor([[-100, -100]]))
    assert n == 0 and kl == 0


def test_kl_to_reference_is_zero_at_the_reference_and_pulls_toward_it():
    """Its gradient in the policy's logits is pi - ref at labelled positions and 0 elsewhere."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(2, 5, 7, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 3, 1, -100], [-100, 2, 2, 2, 2]])
    same, n = masked_kl_to_reference(ref, ref, labels)
    assert n == 6 and abs(same.item()) < 1e-12
    kl, _ = masked_kl_to_reference(logits, ref, labels)
    assert kl > 0
    kl.backward()
    want = torch.softmax(logits.detach(), -1) - torch.softmax(ref, -1)
    mask = torch.zeros(2, 5, 1, dtype=torch.float64)
    mask[:, :-1, 0] = (labels[:, 1:] != -100).double()
    assert_close(logits.grad, want * mask)


def test_kl_to_reference_weights_scale_each_position():
    """Per-token weights (a demonstration's kl_weight): all ones is the unweighted sum, a row at 0
    drops out of the sum and of the gradient, a row at 2 counts twice; the count stays the
    labelled positions."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(2, 5, 7, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 3, 1, -100], [-100, 2, 2, 2, 2]])
    plain, n = masked_kl_to_reference(logits, ref, labels)
    ones, n_ones = masked_kl_to_reference(logits, ref, labels, torch.ones(2, 5))
    assert_close(ones, plain) and n_ones == n == 6
    first, _ = masked_kl_to_reference(logits[:1], ref[:1], labels[:1])
    second, _ = masked_kl_to_reference(logits[1:], ref[1:], labels[1:])
    weighted, n_w = masked_kl_to_reference(logits, ref, labels, torch.tensor([[0.0] * 5, [2.0] * 5]))
    assert n_w == 6 and first > 0
    assert_close(weighted, 2 * second)
    weighted.backward()
    assert torch.all(logits.grad[0] == 0) and torch.any(logits.grad[1] != 0)
