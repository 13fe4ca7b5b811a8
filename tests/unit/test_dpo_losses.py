"""rlhf.losses.dpo against hand-derived numbers and a float64 computation written out here."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.losses.dpo import DPO_LOSSES, PairLogps, add_nll, pair_stats, sequence_logps, summarize

LOG2 = math.log(2)


def batch(dtype=torch.float32, seed: int = 0, p: int = 16) -> PairLogps:
    """A fixed batch of P pairs: summed log-probs of plausible size, token counts 1..40."""
    g = torch.Generator().manual_seed(seed)
    lp = [-torch.rand(p, generator=g, dtype=torch.float64) * 60 for _ in range(4)]
    counts = [torch.randint(1, 41, (p,), generator=g).to(torch.float64) for _ in range(2)]
    return PairLogps(*(t.to(dtype) for t in lp + counts))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


# each loss of one pair in float64 Python arithmetic: (h, h_mean, beta, eps) -> loss, with h the
# reference-relative margin of summed log-probs and h_mean that of per-token means
FLOAT64 = {
    "sigmoid": lambda h, hm, beta, eps: -log_sigmoid(beta * h),
    "cdpo": lambda h, hm, beta, eps: -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h),
    "ipo": lambda h, hm, beta, eps: (hm - 1 / (2 * beta)) ** 2,
    "hinge": lambda h, hm, beta, eps: max(0.0, 1 - beta * h),
}


def reference_losses(name: str, lp: PairLogps, beta: float, eps: float) -> list[float]:
    out = []
    for i in range(len(lp.policy_chosen)):
        pc, pr, rc, rr, nc, nr = (float(t[i]) for t in lp[:6])
        out.append(FLOAT64[name]((pc - rc) - (pr - rr), (pc - rc) / nc - (pr - rr) / nr, beta, eps))
    return out


def test_the_registry_holds_the_six_losses():
    assert set(DPO_LOSSES) == {"sigmoid", "cdpo", "ipo", "hinge", "simpo", "kto"}


def test_simpo_by_hand_reads_no_reference():
    # chosen: -4 over 2 tokens, rejected: -9 over 3; beta 2 -> rewards -4 and -6; gamma 0.5
    t = torch.tensor
    lp = PairLogps(t([-4.0]), t([-9.0]), t([-1.0]), t([-50.0]), t([2.0]), t([3.0]))
    out = DPO_LOSSES["simpo"](lp, 2.0, 0.0, 0.5)
    assert_close(out.losses, t([0.20141327798275246]))  # -log sigmoid(-4 + 6 - 0.5) = log(1 + e^-1.5)
    assert_close(out.chosen_rewards, t([-4.0]))
    assert_close(out.rejected_rewards, t([-6.0]))
    other_ref = lp._replace(ref_chosen=t([-30.0]), ref_rejected=t([0.0]))
    assert_close(DPO_LOSSES["simpo"](other_ref, 2.0, 0.0, 0.5).losses, out.losses)


def test_add_nll_adds_the_chosen_per_token_nll_and_its_gradient():
    lp = zero_margin()  # policy_chosen -5, -7, -1 over 4 tokens each
    pc = lp.policy_chosen.clone().requires_grad_()
    lp = lp._replace(policy_chosen=pc)
    base = DPO_LOSSES["sigmoid"](lp, 0.1)
    assert add_nll(base, lp, 0.0) is base
    out = add_nll(base, lp, 0.5)
    assert_close(out.losses, LOG2 + 0.5 * torch.tensor([1.25, 1.75, 0.25]))
    assert_close(out.chosen_rewards, base.chosen_rewards)
    out.losses.sum().backward()
    # d/dpc of -log sigmoid(beta h) at h = 0 is -beta/2; of 0.5 * -pc/4 it is -0.125
    assert_close(pc.grad, torch.full((3,), -0.05 - 0.125))


@pytest.mark.parametrize("name", ["sigmoid", "cdpo", "ipo", "hinge"])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_losses_and_rewards_equal_a_float64_computation(name, beta):
    eps = 0.2 if name == "cdpo" else 0.0
    lp32 = batch(torch.float32)
    out = DPO_LOSSES[name](lp32, beta, eps)
    lp64 = PairLogps(*(t.double() for t in lp32[:6]))  # the very same numbers, in float64
    expected = torch.tensor(reference_losses(name, lp64, beta, eps), dtype=torch.float64)
    assert out.losses.dtype == torch.float32
    assert_close(out.losses.double(), expected, rtol=1e-5, atol=1e-6)
    # implicit rewards: beta * (log pi - log pi_ref), summed log-probs for every loss
    assert_close(
        out.chosen_rewards.double(), beta * (lp64.policy_chosen - lp64.ref_chosen), rtol=1e-5, atol=1e-5
    )
    assert_close(
        out.rejected_rewards.double(), beta * (lp64.policy_rejected - lp64.ref_rejected), rtol=1e-5, atol=1e-5
    )
    # float64 inputs stay float64 and match to rounding
    out64 = DPO_LOSSES[name](lp64, beta, eps)
    assert out64.losses.dtype == torch.float64
    assert_close(out64.losses, expected, rtol=1e-12, atol=1e-12)


def zero_margin(p: int = 3) -> PairLogps:
    """Policy == reference: h = 0 for every pair."""
    lp = torch.tensor([-5.0, -7.0, -1.0][:p])
    return PairLogps(lp, lp - 2, lp, lp - 2, torch.full((p,), 4.0), torch.full((p,), 6.0))


def test_values_at_zero_margin():
    lp = zero_margin()
    assert_close(DPO_LOSSES["sigmoid"](lp, 0.1).losses, torch.full((3,), LOG2))
    assert_close(DPO_LOSSES["cdpo"](lp, 0.1, 0.3).losses, torch.full((3,), LOG2))
    assert_close(DPO_LOSSES["hinge"](lp, 0.1).losses, torch.ones(3))
    assert_close(DPO_LOSSES["ipo"](lp, 0.1).losses, torch.full((3,), 25.0))  # (0 - 1/(2*0.1))^2
    out = DPO_LOSSES["sigmoid"](lp, 0.1)
    assert_close(out.chosen_rewards, torch.zeros(3))
    assert_close(out.rejected_rewards, torch.zeros(3))


def one_pair(h_chosen: float, h_rejected: float, n_c: float = 1.0, n_r: float = 1.0) -> PairLogps:
    """A pair whose log-ratios log pi/pi_ref are h_chosen and h_rejected."""
    t = torch.tensor
    return PairLogps(t([h_chosen - 3.0]), t([h_rejected - 4.0]), t([-3.0]), t([-4.0]), t([n_c]), t([n_r]))


def test_hand_computed_values():
    # h = 2 - (-1) = 3, beta = 0.5: beta h = 1.5
    lp = one_pair(2.0, -1.0)
    assert_close(DPO_LOSSES["sigmoid"](lp, 0.5).losses, torch.tensor([0.20141327798275246]))  # log(1+e^-1.5)
    # cdpo eps=0.1: 0.9 * 0.2014... + 0.1 * 1.7014... (= log(1 + e^1.5))
    assert_close(DPO_LOSSES["cdpo"](lp, 0.5, 0.1).losses, torch.tensor([0.3514132779827525]))
    assert_close(DPO_LOSSES["hinge"](lp, 0.5).losses, torch.tensor([0.0]))  # 1 - 1.5 < 0
    assert_close(DPO_LOSSES["hinge"](lp, 0.2).losses, torch.tensor([0.4]))  # 1 - 0.6
    assert_close(DPO_LOSSES["ipo"](lp, 0.5).losses, torch.tensor([4.0]))  # (3 - 1)^2
    out = DPO_LOSSES["sigmoid"](lp, 0.5)
    assert_close(out.chosen_rewards, torch.tensor([1.0]))
    assert_close(out.rejected_rewards, torch.tensor([-0.5]))


def test_ipo_uses_per_token_means():
    # the same summed log-ratios over 4 and 2 tokens: means 0.5 and -0.5, gap 1 -> (1 - 1)^2 = 0
    assert_close(DPO_LOSSES["ipo"](one_pair(2.0, -1.0, 4.0, 2.0), 0.5).losses, torch.tensor([0.0]))
    # doubling every token count halves the mean log-ratios: gap 0.5 -> (0.5 - 1)^2
    assert_close(DPO_LOSSES["ipo"](one_pair(2.0, -1.0, 8.0, 4.0), 0.5).losses, torch.tensor([0.25]))


def test_cdpo_is_dpo_at_zero_smoothing_and_symmetric():
    lp = batch()
    assert_close(DPO_LOSSES["cdpo"](lp, 0.3, 0.0).losses, DPO_LOSSES["sigmoid"](lp, 0.3).losses)
    flipped = PairLogps(lp.policy_rejected, lp.policy_chosen, lp.ref_rejected, lp.ref_chosen, *lp[4:6])
    # flipping every label with probability eps == the swapped pair with probability 1 - eps
    assert_close(DPO_LOSSES["cdpo"](lp, 0.3, 0.2).losses, DPO_LOSSES["cdpo"](flipped, 0.3, 0.8).losses)


def test_sigmoid_gradient():
    # d/d log pi(y_c) of -log sigmoid(beta h) = -beta sigmoid(-beta h); + for y_r; none to the reference
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-4.0], requires_grad=True)
    lp = PairLogps(pc, pr, torch.tensor([-3.0]), torch.tensor([-3.0]), torch.ones(1), torch.ones(1))
    DPO_LOSSES["sigmoid"](lp, 0.5).losses.sum().backward()  # h = 2 - (-1) = 3
    s = 1 / (1 + math.exp(1.5))  # sigmoid(-1.5)
    assert_close(pc.grad, torch.tensor([-0.5 * s]))
    assert_close(pr.grad, torch.tensor([0.5 * s]))


def test_rewards_carry_no_gradient():
    pc = torch.tensor([-1.0], requires_grad=True)
    lp = PairLogps(
        pc, torch.tensor([-2.0]), torch.tensor([-1.0]), torch.tensor([-2.0]), torch.ones(1), torch.ones(1),
        torch.ones(1),  # desirable, read by kto only
    )  # fmt: skip
    for fn in DPO_LOSSES.values():
        out = fn(lp, 0.1, 0.1)
        assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad


# ---------------------------------------------------------------- metrics


def test_pair_stats_and_summarize():
    # rewards (beta = 1): chosen 1, 0, 2; rejected 0, 1, 2 -> right, wrong, tie (a tie is not right)
    t = torch.tensor
    lp = PairLogps(
        t([1.0, 0.0, 2.0]), t([0.0, 1.0, 2.0]), t([0.0, 0.0, 0.0]), t([0.0, 0.0, 0.0]), *[t([1.0] * 3)] * 2
    )
    out = DPO_LOSSES["hinge"](lp, 1.0)  # losses 0, 2, 1
    sums = pair_stats(out, lp, t([1.0, 3.0, 0.0]))
    m = summarize(sums + sums, "eval_")  # two identical micro-batches: the means are unchanged
    assert m["eval_loss"] == pytest.approx((0 * 1 + 2 * 3 + 1 * 0) / 4)  # weighted over pairs
    assert m["eval_accuracy"] == pytest.approx(1 / 3)
    assert m["eval_margin"] == pytest.approx(0.0)
    assert m["eval_reward_chosen"] == pytest.approx(1.0)
    assert m["eval_reward_rejected"] == pytest.approx(1.0)
    assert m["eval_logp_chosen"] == pytest.approx(1.0)


# ---------------------------------------------------------------- per-sequence log-probs


def float64_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum_t log_softmax(logits[r, t])[targets[r, t, s]] in float64, one term at a time."""
    logp = torch.log_softmax(logits.double(), -1)
    out = torch.zeros(targets.size(0), targets.size(2), dtype=torch.float64)
    for r, t, s in (targets != -100).nonzero().tolist():
        out[r, s] += logp[r, t, targets[r, t, s]]
    return out


def test_sequence_logps_equal_a_float64_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g) * 4
    targets = torch.tensor(
        [[3, 4, 10, -100, -100, -100], [0, 1, 2, 3, 4, -100], [-100, -100, -100, 7, -100, -100]]
    )
    sums, counts = sequence_logps(logits, targets[..., None])
    assert sums.shape == (3, 1)
    assert_close(sums.double(), float64_logps(logits, targets[..., None]), rtol=1e-6, atol=1e-5)
    assert counts[:, 0].tolist() == [3.0, 5.0, 1.0]


def test_one_position_can_predict_two_targets():
    """A row prompt + chosen + rejected: the prompt's last position predicts the first token of
    both responses, so targets has two sides (S = 2) and position 1 holds a target in each."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 6, 13, generator=g)
    # prompt at 0-1, chosen (tokens 5, 6) at 2-3, rejected (tokens 7, 8) at 4-5
    chosen = torch.tensor([[-100, 5, 6, -100, -100, -100]])  # position 1 -> 5, position 2 -> 6
    rejected = torch.tensor([[-100, 7, -100, -100, 8, -100]])  # position 1 -> 7, position 4 -> 8
    sums, counts = sequence_logps(logits, torch.stack([chosen, rejected], -1))
    logp = torch.log_softmax(logits[0].double(), -1)
    assert_close(sums[0].double(), torch.stack([logp[1, 5] + logp[2, 6], logp[1, 7] + logp[4, 8]]))
    assert counts.tolist() == [[2.0, 2.0]]


def test_sequence_logps_reads_bf16_logits_in_float32():
    logits = torch.zeros(1, 3, 4, dtype=torch.bfloat16)  # uniform over 4 tokens
    sums, _ = sequence_logps(logits, torch.tensor([[1, 2, -100]])[..., None])
    assert sums.dtype == torch.float32
    assert_close(sums, torch.tensor([[-2 * math.log(4)]]))
