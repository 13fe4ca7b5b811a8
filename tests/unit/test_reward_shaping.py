"""rlhf.rollout.reward_shaping: score post-processing and KL-shaped per-token rewards, by hand."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlhf.rollout.reward_shaping import postprocess_scores, shape_rewards


def test_postprocess_order_normalise_then_penalty_then_clip():
    scores = torch.tensor([3.0, 5.0, -1.0])
    finished = torch.tensor([True, False, False])
    out = postprocess_scores(scores, finished, mean=1.0, std=2.0, clip=1.5, missing_eos_penalty=1.0)
    # normalise: (1, 2, -1); penalty on unfinished: (1, 1, -2); clip to 1.5: (1, 1, -1.5)
    # (clip before penalty would give 0.5 for row 1; penalty before normalising, 1.5)
    assert_close(out, torch.tensor([1.0, 1.0, -1.5]))
    assert_close(scores, torch.tensor([3.0, 5.0, -1.0]))  # input untouched


def test_postprocess_each_step_alone():
    scores = torch.tensor([3.0, -4.0])
    finished = torch.tensor([True, False])
    assert_close(postprocess_scores(scores, finished, mean=1.0), torch.tensor([2.0, -5.0]))
    assert_close(postprocess_scores(scores, finished, std=2.0), torch.tensor([1.5, -2.0]))
    assert_close(postprocess_scores(scores, finished, missing_eos_penalty=0.5), torch.tensor([3.0, -4.5]))
    assert_close(postprocess_scores(scores, finished, clip=2.0), torch.tensor([2.0, -2.0]))
    out = postprocess_scores(scores, finished, clip=0.0)  # clip <= 0: off
    assert_close(out, scores)
    assert out.data_ptr() != scores.data_ptr()


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_postprocess_rejects_nonpositive_std(std):
    with pytest.raises(ValueError, match="std must be > 0"):
        postprocess_scores(torch.zeros(2), torch.ones(2, dtype=torch.bool), mean=0.0, std=std)


LOGP = torch.tensor([[-1.0, -2.0, -1.0, -0.5], [-1.0, -1.0, 5.0, 5.0], [-3.0, 9.0, 9.0, 9.0]])
REF = torch.tensor([[-2.0, -2.0, -1.5, -0.5], [-0.5, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])  # lengths 4, 2, 1
SCORES = torch.tensor([10.0, 20.0, 30.0])


@pytest.mark.parametrize("mask", [MASK, MASK.bool(), MASK.float()])
def test_shape_rewards_puts_score_on_each_rows_last_token(mask):
    rewards, kl = shape_rewards(SCORES, LOGP, REF, mask, kl_coef=0.5)
    # k1 = logp - ref on valid tokens: (1, 0, 0.5, 0), (-0.5, 0), (-2); r = -0.5 * k1 + score at the end
    assert_close(kl, torch.tensor([[1.0, 0.0, 0.5, 0.0], [-0.5, 0.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]]))
    assert_close(
        rewards, torch.tensor([[-0.5, 0.0, -0.25, 10.0], [0.25, 20.0, 0.0, 0.0], [31.0, 0.0, 0.0, 0.0]])
    )


def test_shape_rewards_uses_the_named_estimator():
    rewards, kl = shape_rewards(SCORES, LOGP, REF, MASK, kl_coef=2.0, kl_estimator="k2")
    # k2 = (logp - ref)^2 / 2 on valid tokens
    assert_close(kl, torch.tensor([[0.5, 0.0, 0.125, 0.0], [0.125, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]))
    assert_close(
        rewards, torch.tensor([[-1.0, 0.0, -0.25, 10.0], [-0.25, 20.0, 0.0, 0.0], [26.0, 0.0, 0.0, 0.0]])
    )
    with pytest.raises(ValueError, match="unknown KL estimator"):
        shape_rewards(SCORES, LOGP, REF, MASK, kl_coef=1.0, kl_estimator="k9")


def test_shape_rewards_rejects_an_empty_row():
    mask = MASK.clone()
    mask[1] = 0
    with pytest.raises(ValueError, match=r"rows \[1\] have an all-zero response mask"):
        shape_rewards(SCORES, LOGP, REF, mask, kl_coef=0.5)
