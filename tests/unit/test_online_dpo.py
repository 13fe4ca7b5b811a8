"""rlhf.losses.online_dpo against a computation written out here."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from rlhf.losses.online_dpo import online_dpo_loss


def test_online_dpo_loss_by_hand():
    # 2 prompts x 3 samples, 2 tokens each (row 4's second token is padding)
    logp = torch.tensor(
        [[-1.0, -1.0], [-0.5, -0.5], [-2.0, -1.0], [-1.0, 0.0], [-3.0, 9.0], [-0.2, -0.3]],
        dtype=torch.float64,
    )
    ref = torch.full_like(logp, -1.0)
    mask = torch.ones_like(logp)
    mask[4, 1] = 0
    scores = torch.tensor([0.0, 1.0, -1.0, 2.0, 2.0, 2.0], dtype=torch.float64)  # group 1 has no preference
    logp.requires_grad_()
    out = online_dpo_loss(logp, ref, mask, scores, 3, beta=0.5)
    # group 0: chosen row 1 (log-ratio -1 + 2 = 1), rejected row 2 (-3 + 2 = -1): h = 2, beta h = 1
    assert_close(out.losses, torch.tensor([math.log1p(math.exp(-1.0)), 0.0], dtype=torch.float64))
    assert out.pairs.item() == 1 and out.correct.item() == 1
    assert_close(out.margin, torch.tensor(1.0, dtype=torch.float64))  # 0.5 * 1 - 0.5 * (-1)
    out.losses.sum().backward()
    # d/dlogp of -log sigmoid(beta h): -beta sigmoid(-beta h) at chosen tokens, + at rejected; 0 elsewhere
    g = 0.5 / (1 + math.e)
    expected = torch.zeros_like(logp)
    expected[1], expected[2] = -g, g
    assert_close(logp.grad, expected)
