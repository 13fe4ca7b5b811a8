"""rlhf.losses against hand-computed numbers (values written out, formulas in the comments)."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from rlhf.losses.bradley_terry import group_losses, pairwise_accuracy
from rlhf.losses.sft import masked_nll

LOG3 = 1.0986122886681098
SP1 = 0.31326168751822286  # -log sigmoid(1) = log(1 + e^-1)
SP2 = 0.1269280110429725  # -log sigmoid(2)
SP3 = 0.04858735157374206  # -log sigmoid(3)


# ---------------------------------------------------------------- SFT


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


# ---------------------------------------------------------------- Bradley-Terry


def bt(rewards, better, worse, pair_group, n_groups, margin=None):
    return group_losses(
        torch.tensor(rewards),
        torch.tensor(better),
        torch.tensor(worse),
        torch.tensor(pair_group),
        n_groups,
        None if margin is None else torch.tensor(margin),
    )


def test_one_pair():
    assert_close(bt([1.0, 0.0], [0], [1], [0], 1), torch.tensor([SP1]))
    # the preferred response scored lower: -log sigmoid(-1) = 1 + log(1 + e^-1)
    assert_close(bt([0.0, 1.0], [0], [1], [0], 1), torch.tensor([1.3132616875182228]))


def test_three_response_group_is_the_mean_of_its_three_pair_losses():
    # rewards 2 > 1 > 0: differences 1, 2, 1
    loss = bt([2.0, 1.0, 0.0], [0, 0, 1], [1, 2, 2], [0, 0, 0], 1)
    assert_close(loss, torch.tensor([(SP1 + SP2 + SP1) / 3]))
    assert_close(loss, torch.tensor([0.25115046202647273]))


def test_margin_shifts_the_difference():
    # -log sigmoid(1 - m)
    assert_close(bt([1.0, 0.0], [0], [1], [0], 1, margin=[1.0]), torch.tensor([math.log(2)]))
    assert_close(bt([1.0, 0.0], [0], [1], [0], 1, margin=[0.5]), torch.tensor([0.4740769841801067]))
    assert_close(bt([1.0, 0.0], [0], [1], [0], 1, margin=[0.0]), torch.tensor([SP1]))


def test_two_groups_get_separate_means():
    # group 0: the 3-response group above; group 1: one pair with r_better - r_worse = 3
    loss = bt([2.0, 1.0, 0.0, 0.0, 3.0], [0, 0, 1, 4], [1, 2, 2, 3], [0, 0, 0, 1], 2)
    assert_close(loss, torch.tensor([0.25115046202647273, SP3]))
    # not the pooled mean over all 4 pairs
    assert abs(loss.mean().item() - (2 * SP1 + SP2 + SP3) / 4) > 1e-3


def test_group_without_comparisons_is_zero():
    loss = bt([1.0, 0.0, 5.0, 5.0], [0], [1], [0], 2)
    assert_close(loss, torch.tensor([SP1, 0.0]))


def test_gradient_matches_the_sigmoid_formula():
    # d/dr_w [-log sigmoid(r_w - r_l)] = -sigmoid(r_l - r_w), and +sigmoid(r_l - r_w) for r_l;
    # the group mean divides by its 3 pairs
    rewards = torch.tensor([2.0, 1.0, 0.0], requires_grad=True)
    loss = group_losses(rewards, torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2]), torch.tensor([0, 0, 0]), 1)
    loss.sum().backward()
    s1, s2 = 0.2689414213699951, 0.11920292202211755  # sigmoid(-1), sigmoid(-2)
    assert_close(rewards.grad, torch.tensor([-(s1 + s2) / 3, (s1 - s1) / 3, (s2 + s1) / 3]))
    assert_close(rewards.grad, torch.tensor([-0.1293814477973709, 0.0, 0.1293814477973709]))


def test_gradient_with_margin():
    rewards = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = group_losses(
        rewards, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), 1, torch.tensor([1.0])
    )
    loss.sum().backward()
    assert_close(rewards.grad, torch.tensor([-0.5, 0.5]))  # sigmoid(0) = 1/2


def test_pairwise_accuracy_tie_counts_half():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    # right, wrong, tie
    acc = pairwise_accuracy(rewards, torch.tensor([0, 1, 2]), torch.tensor([1, 0, 3]))
    assert_close(acc, torch.tensor(0.5))
    acc = pairwise_accuracy(rewards, torch.tensor([0, 0, 2]), torch.tensor([1, 2, 3]))
    assert_close(acc, torch.tensor(2.5 / 3))
    assert_close(pairwise_accuracy(rewards, torch.tensor([1]), torch.tensor([0])), torch.tensor(0.0))
