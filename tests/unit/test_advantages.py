"""rlhf.rollout.advantages against hand-computed values (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.losses.groups import group_pairs
from rlhf.rollout.advantages import (
    explained_variance,
    gae,
    group_advantages,
    masked_mean,
    masked_sum,
    masked_var,
    rloo_advantages,
    uniform_groups,
    whiten,
)

NAN, INF = math.nan, math.inf


def f64(*rows):
    return torch.tensor(rows, dtype=torch.float64)


X = f64([1.0, 2.0, NAN], [4.0, INF, -INF])  # valid values 1, 2, 4; padding is garbage
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])


# ---------------------------------------------------------------- masked statistics


def test_masked_sum_and_mean_ignore_padding_values():
    assert_close(masked_sum(X, MASK), torch.tensor(7.0, dtype=torch.float64))
    assert_close(masked_sum(X, MASK, dim=1), f64(3.0, 4.0))
    assert_close(masked_mean(X, MASK), torch.tensor(7 / 3, dtype=torch.float64))
    assert_close(masked_mean(X, MASK.bool(), dim=1), f64(1.5, 4.0))
    assert_close(masked_mean(X, MASK.double(), dim=0), f64(2.5, 2.0, NAN), equal_nan=True)


def test_masked_var_biased_and_unbiased():
    # deviations from 7/3: -4/3, -1/3, 5/3; squares sum to 14/3
    assert_close(masked_var(X, MASK), torch.tensor(7 / 3, dtype=torch.float64))
    assert_close(masked_var(X, MASK, unbiased=False), torch.tensor(14 / 9, dtype=torch.float64))


def test_masked_var_needs_enough_elements():
    one = torch.tensor([[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="at least 2 valid elements, the mask has 1"):
        masked_var(X, one)
    assert masked_var(X, one, unbiased=False) == 0
    with pytest.raises(ValueError, match="the mask has 0"):
        masked_var(X, torch.zeros_like(one), unbiased=False)


def test_whiten_literal_values_and_zero_padding():
    w = whiten(X, MASK, eps=0.0)
    s = math.sqrt(7 / 3)
    assert_close(w, f64([(1 - 7 / 3) / s, (2 - 7 / 3) / s, 0.0], [(4 - 7 / 3) / s, 0.0, 0.0]))
    assert_close(w, f64([-0.8728715609439696, -0.21821789023599247, 0.0], [1.0910894511799618, 0.0, 0.0]))


def test_whiten_gives_mean_0_var_1_and_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64) * 3 + 5
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5, [1] * 3 + [0] * 3])
    w = whiten(x, mask)
    assert_close(masked_mean(w, mask), torch.tensor(0.0, dtype=torch.float64))
    assert_close(masked_var(w, mask), torch.tensor(1.0, dtype=torch.float64))
    assert (w[mask == 0] == 0).all()
    other_padding = torch.where(mask.bool(), x, torch.full_like(x, 1e6))
    assert_close(whiten(other_padding, mask), w)


def test_whiten_without_shift_keeps_the_mean():
    w = whiten(X, MASK, shift_mean=False, eps=0.0)
    assert_close(masked_mean(w, MASK), torch.tensor(7 / 3, dtype=torch.float64))
    assert_close(masked_var(w, MASK), torch.tensor(1.0, dtype=torch.float64))
    assert w[0, 2] == 0 and w[1, 1] == 0


# ---------------------------------------------------------------- GAE


def test_gae_right_padded_rows_by_hand():
    rewards = f64([0.1, -0.2, 1.0], [2.0, 9.0, 9.0])
    values = f64([0.5, 0.4, 0.3], [1.5, 7.0, 7.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0, gamma*lam = 0.72:
    #   t=2: delta = 1.0 + 0 - 0.3 = 0.7                    A = 0.7
    #   t=1: delta = -0.2 + 0.9*0.3 - 0.4 = -0.33           A = -0.33 + 0.72*0.7 = 0.174
    #   t=0: delta = 0.1 + 0.9*0.4 - 0.5 = -0.04            A = -0.04 + 0.72*0.174 = 0.08528
    # row 1 ends at t=0 (no bootstrap from the padding's 7.0): A = 2.0 - 1.5 = 0.5
    assert_close(adv, f64([0.08528, 0.174, 0.7], [0.5, 0.0, 0.0]))
    assert_close(ret, f64([0.58528, 0.574, 1.0], [2.0, 0.0, 0.0]))


def test_gae_gamma_lam_one_gives_reward_to_go():
    rewards = f64([1.0, 2.0, 3.0, NAN], [-1.0, 4.0, 7.0, 7.0])
    values = f64([0.5, -1.0, 2.0, 9.0], [3.0, 1.0, INF, 0.0])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert_close(ret, f64([6.0, 5.0, 3.0, 0.0], [3.0, 4.0, 0.0, 0.0]))
    assert_close(adv, f64([5.5, 6.0, 1.0, 0.0], [0.0, 3.0, 0.0, 0.0]))


def test_gae_lam_zero_is_one_step_td_error():
    rewards = f64([0.0, 1.0])
    values = f64([0.5, 2.0])
    adv, _ = gae(rewards, values, torch.ones(1, 2), gamma=0.5, lam=0.0)
    assert_close(adv, f64([0.0 + 0.5 * 2.0 - 0.5, 1.0 - 2.0]))


# ---------------------------------------------------------------- GRPO and RLOO

SCORES = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 6.0], dtype=torch.float64)  # 2 prompts x 3 samples


def test_group_advantages_literal_2x3():
    # group 0: mean 2, unbiased std 1; group 1: mean 2, unbiased std sqrt(24/2) = sqrt(12)
    a = group_advantages(SCORES, 3, eps=0.0)
    assert_close(a, f64(-1.0, 0.0, 1.0, -0.5773502691896258, -0.5773502691896258, 1.1547005383792517))
    assert_close(group_advantages(SCORES, 3, scale="none"), f64(-1.0, 0.0, 1.0, -2.0, -2.0, 4.0))


def test_group_advantages_batch_scale_divides_by_the_batch_std():
    # group means 2 and 2; all six scores: mean 2, squared deviations 1+0+1+4+4+16 = 26, unbiased var 26/5
    a = group_advantages(SCORES, 3, scale="batch", eps=0.0)
    assert_close(a, f64(-1.0, 0.0, 1.0, -2.0, -2.0, 4.0) / math.sqrt(5.2))
    # a batch spread over processes: the caller passes the std of the whole batch
    assert_close(
        group_advantages(SCORES, 3, scale="batch", eps=0.0, batch_std=2.0),
        f64(-0.5, 0.0, 0.5, -1.0, -1.0, 2.0),
    )
    with pytest.raises(ValueError, match="unknown advantage scale 'std'"):
        group_advantages(SCORES, 3, scale="std")


def test_uniform_groups_marks_groups_that_teach_nothing():
    scores = f64(0.5, 0.5, 0.5, 1.0, 0.0, 1.0, -1.0, -1.0, -1.0)
    assert uniform_groups(scores, 3).tolist() == [True, False, True]
    assert_close(group_advantages(scores, 3)[[0, 1, 2, 6, 7, 8]], torch.zeros(6, dtype=torch.float64))


def test_group_pairs_picks_best_and_worst_per_group():
    scores = f64(0.5, 2.0, -1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 0.0)
    chosen, rejected, valid = group_pairs(scores, 3)
    assert chosen.tolist() == [1, 3, 6] and rejected.tolist() == [2, 3, 8]  # first of equals
    assert valid.tolist() == [True, False, True]


def test_group_advantages_eps_keeps_identical_scores_finite():
    a = group_advantages(torch.tensor([0.5, 0.5, 1.0, 3.0]), 2)
    assert_close(a[:2], torch.zeros(2))
    assert_close(a[2:], torch.tensor([-1.0, 1.0]) / (math.sqrt(2) + 1e-6))


def test_rloo_advantages_literal_2x3():
    # leave-one-out baselines: (2+3)/2, (1+3)/2, (1+2)/2 and (0+6)/2, (0+6)/2, (0+0)/2
    a = rloo_advantages(SCORES, 3)
    assert_close(a, f64(-1.5, 0.0, 1.5, -3.0, -3.0, 6.0))
    assert_close(a, 3 / 2 * group_advantages(SCORES, 3, scale="none"))


@pytest.mark.parametrize("fn", [group_advantages, rloo_advantages])
def test_group_size_errors(fn):
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        fn(SCORES, 1)
    with pytest.raises(ValueError, match="number of scores 5 is not divisible by group_size 3"):
        fn(SCORES[:5], 3)


# ---------------------------------------------------------------- explained variance


def test_explained_variance():
    returns = f64([1.0, 2.0, NAN], [3.0, NAN, NAN])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    # residual (0, 0, 1): var 2/9; var(returns) = 2/3 -> 1 - 1/3
    values = f64([1.0, 2.0, 5.0], [2.0, 0.0, 0.0])
    assert explained_variance(values, returns, mask) == pytest.approx(2 / 3)
    assert explained_variance(torch.full_like(returns, 2.0), returns, mask) == pytest.approx(0.0)
    assert math.isnan(explained_variance(values, torch.ones(2, 3, dtype=torch.float64), mask))
