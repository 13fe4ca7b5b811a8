"""rlhf.losses against hand-computed numbers (values written out, formulas in the comments)."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from rlhf.losses.bradley_terry import group_losses, pairwise_accuracy

SP1 = 0.31326168751822286  # -log sigmoid(1) = log(1 + e^-1)
SP2 = 0.1269280110429725  # -log sigmoid(2)
SP3 = 0.04858735157374206  # -log sigmoid(3)


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
