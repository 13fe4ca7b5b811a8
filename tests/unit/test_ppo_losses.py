"""rlhf.losses.ppo against hand-computed values (float64, clip eps 0.2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.losses.ppo import aggregation_weights, approx_kl, entropy_from_logits, policy_loss, value_loss

LN2 = 0.6931471805599453


def f64(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- policy


def test_policy_loss_clips_only_the_side_that_helps():
    # columns: (A, ratio) = (1, 1.1) inside, (1, 1.5) above, (1, 0.5) below,
    #          (-1, 0.5) below, (-1, 1.5) above, (-2, 0.9) inside
    adv = f64([1.0, 1.0, 1.0, -1.0, -1.0, -2.0])
    ratio = f64([1.1, 1.5, 0.5, 0.5, 1.5, 0.9])
    logp = ratio.log().requires_grad_()
    old = torch.zeros_like(ratio)
    loss, clipped = policy_loss(logp, old, adv, clip_eps=0.2)
    # max(-A r, -A clip(r, 0.8, 1.2))
    assert_close(loss, f64([-1.1, -1.2, -0.5, 0.8, 1.5, 1.8]))
    assert_close(clipped, f64([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    loss.sum().backward()
    # d(-A r)/dlogp = -A r where unclipped, 0 where the clipped constant is taken
    assert_close(logp.grad, f64([-1.1, 0.0, -0.5, 0.0, 1.5, 1.8]))


def test_policy_loss_clip_higher_widens_only_the_upper_side():
    # eps 0.2, eps_high 0.28: ratios clamp to [0.8, 1.28]
    adv = f64([1.0, 1.0, 1.0, -1.0, -1.0])
    ratio = f64([1.25, 1.5, 0.5, 0.5, 1.25])
    logp = ratio.log().requires_grad_()
    loss, clipped = policy_loss(logp, torch.zeros_like(ratio), adv, clip_eps=0.2, clip_eps_high=0.28)
    # (1, 1.25): inside the wider range, unclipped (the symmetric range would take -1.2);
    # (1, 1.5): -1.28; (1, 0.5): -0.5; (-1, 0.5): max(0.5, 0.8) = 0.8; (-1, 1.25): 1.25
    assert_close(loss, f64([-1.25, -1.28, -0.5, 0.8, 1.25]))
    assert_close(clipped, f64([0.0, 1.0, 0.0, 1.0, 0.0]))
    loss.sum().backward()
    assert_close(logp.grad, f64([-1.25, 0.0, -0.5, 0.0, 1.25]))
    symmetric, _ = policy_loss(logp.detach(), torch.zeros_like(ratio), adv, clip_eps=0.2)
    assert_close(symmetric, f64([-1.2, -1.2, -0.5, 0.8, 1.25]))


def test_sequence_level_ratio_by_hand():
    # row 0: token ratios 1.1 and 1.5 (third position is padding), A = 1 -> sequence ratio
    # sqrt(1.65) = 1.2845 above 1.2: clipped, no gradient; row 1: ratios 0.9 and 1.0, A = -2 ->
    # sequence ratio sqrt(0.9) = 0.94868 inside the range
    old = torch.zeros(2, 3, dtype=torch.float64)
    logp = f64([math.log(1.1), math.log(1.5), 7.0], [math.log(0.9), 0.0, 0.0]).requires_grad_()
    adv = f64([1.0, 1.0, 1.0], [-2.0, -2.0, -2.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    mask[1, 2] = 0
    loss, clipped = policy_loss(logp, old, adv, clip_eps=0.2, mask=mask)
    s1 = math.sqrt(0.9)
    assert_close(loss * mask, f64([-1.2, -1.2, 0.0], [2 * s1, 2 * s1, 0.0]))
    assert_close(clipped * mask, f64([1.0, 1.0, 0.0], [0.0, 0.0, 0.0]))
    (loss * mask).sum().backward()
    # each of row 1's |y| = 2 token losses is -A s, and ds/dlogp_t = s / |y|: the summed gradient at
    # each valid token is -A s = 2 s; 0 in the clipped row and at padding
    assert_close(logp.grad, f64([0.0, 0.0, 0.0], [2 * s1, 2 * s1, 0.0]))


def test_sequence_level_ratio_matches_token_level_gradient_at_ratio_1():
    g = torch.Generator().manual_seed(0)
    old = torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 6)  # one advantage per response
    mask = (torch.arange(6) < torch.tensor([[6], [3], [1], [5]])).long()
    grads = []
    for seq_mask in (None, mask):
        logp = old.clone().requires_grad_()
        loss, _ = policy_loss(logp, old, adv, clip_eps=0.2, mask=seq_mask)
        (loss * mask).sum().backward()
        grads.append(logp.grad)
    assert_close((grads[0] * mask).sum(1), (grads[1] * mask).sum(1))
    assert_close(grads[1] * mask, (grads[0] * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True) * mask)


def test_aggregation_weights_by_hand():
    # two responses of 1 and 3 tokens (max 4); the update holds 3 responses and 6 tokens in all
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    token = aggregation_weights(mask, "token", total_tokens=6, total_sequences=3, max_tokens=4)
    assert_close(token, torch.tensor([[1 / 6, 0, 0], [1 / 6, 1 / 6, 1 / 6]]))
    seq = aggregation_weights(mask, "sequence", total_tokens=6, total_sequences=3, max_tokens=4)
    assert_close(seq, torch.tensor([[1 / 3, 0, 0], [1 / 9, 1 / 9, 1 / 9]]))
    const = aggregation_weights(mask, "constant", total_tokens=6, total_sequences=3, max_tokens=4)
    assert_close(const, torch.full((2, 3), 1 / 12) * mask)
    loss = f64([[3.0, 99.0, 99.0], [1.0, 2.0, 3.0]])  # padding values must not count
    assert_close((loss * seq.double()).sum(), torch.tensor((3.0 + 2.0) / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown loss aggregation 'mean'"):
        aggregation_weights(mask, "mean", 6, 3, 4)


def test_aggregation_weights_agree_when_every_response_has_max_length():
    mask = torch.ones(4, 5)
    ws = [
        aggregation_weights(mask, how, total_tokens=20, total_sequences=4, max_tokens=5)
        for how in ("token", "sequence", "constant")
    ]
    assert_close(ws[0], ws[1])
    assert_close(ws[0], ws[2])


def test_policy_loss_uses_old_logp_and_is_unreduced():
    logp = torch.full((2, 3), 0.1, dtype=torch.float64)
    old = torch.full((2, 3), 0.1 - math.log(1.1), dtype=torch.float64)  # ratio 1.1 everywhere
    adv = torch.ones(2, 3, dtype=torch.float64)
    loss, clipped = policy_loss(logp, old, adv, clip_eps=0.05)
    assert loss.shape == (2, 3)
    assert_close(loss, torch.full((2, 3), -1.05, dtype=torch.float64))
    assert clipped.dtype == torch.float64 and clipped.sum() == 6


# ---------------------------------------------------------------- value


def test_value_loss_clips_both_sides():
    # old_v = 0, eps = 0.2 -> v_clip in [-0.2, 0.2]
    v = f64([0.1, 0.5, -0.5, -0.5, 0.5]).requires_grad_()
    old = torch.zeros(5, dtype=torch.float64)
    ret = f64([1.0, 1.0, 1.0, -1.0, -1.0])
    loss, clipped = value_loss(v, old, ret, clip_eps=0.2)
    # 0.5 * max((v-R)^2, (v_clip-R)^2):
    #   inside: .81 | up past eps toward R: max(.25, .64) | down away from R: max(2.25, 1.44)
    #   down past eps toward R: max(.25, .64) | up away from R: max(2.25, 1.44)
    assert_close(loss, f64([0.405, 0.32, 1.125, 0.32, 1.125]))
    assert_close(clipped, f64([0.0, 1.0, 0.0, 1.0, 0.0]))
    loss.sum().backward()
    assert_close(v.grad, f64([-0.9, 0.0, -1.5, 0.0, 1.5]))  # v - R, none through the clipped branch


def test_value_loss_without_clipping():
    v = f64([0.1, 0.5, -0.5, -0.5, 0.5])
    ret = f64([1.0, 1.0, 1.0, -1.0, -1.0])
    for eps in (0.0, -1.0):
        loss, clipped = value_loss(v, torch.zeros_like(v), ret, clip_eps=eps)
        assert_close(loss, f64([0.405, 0.125, 1.125, 0.125, 1.125]))
        assert_close(clipped, torch.zeros_like(v))


# ---------------------------------------------------------------- entropy and approx KL


def test_entropy_from_logits_known_distributions():
    logits = torch.tensor(
        [
            [
                [0.0, 0.0, 0.0, 0.0],  # uniform over 4: ln 4
                [math.log(2), 0.0, 0.0, -math.inf],  # (1/2, 1/4, 1/4, 0): 3/2 ln 2
                [0.0, -math.inf, -math.inf, -math.inf],  # one-hot: 0, not nan
                [1000.0, 0.0, 0.0, 0.0],  # peaked, huge logit: ~0, finite
            ]
        ],
        dtype=torch.bfloat16,
    )  # (B=1, T=4, V=4)
    h = entropy_from_logits(logits)
    assert h.shape == (1, 4) and h.dtype == torch.float32
    assert_close(h, torch.tensor([[1.3862943611198906, 1.5 * LN2, 0.0, 0.0]]), atol=1e-3, rtol=1e-3)
    assert torch.isfinite(h).all()


def test_approx_kl_values():
    # r = logp - old = [0, ln 2, -ln 2]: (e^r - 1) - r
    logp = f64([[0.0, LN2, -LN2]])
    assert_close(approx_kl(logp, torch.zeros_like(logp)), f64([[0.0, 1.0 - LN2, LN2 - 0.5]]))


def test_approx_kl_expectation_is_kl_old_new():
    old = f64([0.5, 0.5])
    new = f64([0.25, 0.75])
    expectation = (old * approx_kl(new.log(), old.log())).sum()  # tokens sampled from old
    assert_close(expectation, torch.tensor(0.14384103622589042, dtype=torch.float64))  # 1/2 ln(4/3)


def test_entropy_without_grad_goes_by_chunks_to_the_same_bits():
    """A detached (statistic-only) entropy runs CHUNK_ROWS positions at a time: every position's
    value equals the whole-tensor formula's (the path a gradient takes) bit for bit, bf16 and
    float32, -inf logits included."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        logits = (torch.randn(3, 13, 400, generator=g) * 4).to(dtype)  # 39 positions: 3 chunks
        logits[0, 0, 5:] = float("-inf")
        live = logits.clone().requires_grad_()
        whole = entropy_from_logits(live)
        assert whole.requires_grad
        got = entropy_from_logits(logits)
        assert got.dtype == torch.float32 and got.shape == (3, 13)
        assert torch.equal(got, whole.detach()), dtype
