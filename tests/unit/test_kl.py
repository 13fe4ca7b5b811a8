"""rlhf.losses.kl against hand-computed values; expectations taken exactly over a 2-token vocabulary."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhf.losses.kl import KL_ESTIMATORS, kl_loss_term, kl_penalty, sequence_kl

# logp - ref_logp = d = [0.5, -1.0, 0.0]
LOGP = torch.tensor([[-0.5, -2.0, -2.0]], dtype=torch.float64)
REF = torch.tensor([[-1.0, -1.0, -2.0]], dtype=torch.float64)

# pi = (1/4, 3/4), ref = (1/2, 1/2): KL(pi || ref) = -1/4 ln 2 + 3/4 ln 1.5
PI = torch.tensor([0.25, 0.75], dtype=torch.float64)
REF_P = torch.tensor([0.5, 0.5], dtype=torch.float64)
KL_PI_REF = 0.13081203594113698
KL_REF_PI = 0.14384103622589042  # 1/2 ln(4/3), the other direction


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("k1", [0.5, -1.0, 0.0]),  # d
        ("k2", [0.125, 0.5, 0.0]),  # d^2 / 2
        ("k3", [0.10653065971263342, 0.7182818284590451, 0.0]),  # e^-d + d - 1
        ("abs", [0.5, 1.0, 0.0]),  # |d|
    ],
)
def test_kl_penalty_elementwise_values(kind, expected):
    assert_close(kl_penalty(LOGP, REF, kind), torch.tensor([expected], dtype=torch.float64))


def test_kl_penalty_default_is_k1():
    assert_close(kl_penalty(LOGP, REF), LOGP - REF)


def test_unknown_estimator_lists_valid_names():
    with pytest.raises(ValueError, match="k1, k2, k3, abs") as info:
        kl_penalty(LOGP, REF, "k4")
    assert "'k4'" in str(info.value)
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3", "abs"}


def test_k3_is_nonnegative_everywhere():
    grid = torch.linspace(-10, 10, 201, dtype=torch.float64)
    logp, ref = torch.meshgrid(grid, grid, indexing="ij")
    k3 = kl_penalty(logp, ref, "k3")
    assert (k3 >= 0).all()
    assert k3[100, 100] == 0 and k3[0, 200] > 0


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("k1", KL_PI_REF),  # unbiased
        ("k3", KL_PI_REF),  # unbiased
        ("k2", 0.1217073594497122),  # 1/2 E[d^2] = 1/2 (1/4 ln^2 2 + 3/4 ln^2 1.5), biased
        ("abs", 0.4773856262211096),  # 1/4 ln 2 + 3/4 ln 1.5
    ],
)
def test_exact_expectation_under_pi(kind, expected):
    # E_{x ~ pi}[k(x)] summed over the vocabulary, no sampling
    expectation = (PI * kl_penalty(PI.log(), REF_P.log(), kind)).sum()
    assert_close(expectation, torch.tensor(expected, dtype=torch.float64))
    if kind in ("k1", "k3"):
        assert not math.isclose(expectation.item(), KL_REF_PI, rel_tol=1e-3)  # it is KL(pi || ref)


def test_sequence_kl_sums_each_rows_valid_tokens():
    """RLOO's sequence KL: the estimator summed over a row's valid tokens only."""
    logp = torch.cat([LOGP, LOGP])
    ref = torch.cat([REF, REF])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert_close(sequence_kl(logp, ref, mask), torch.tensor([-0.5, 0.5], dtype=torch.float64))  # d summed
    k3 = sequence_kl(logp, ref, mask, "k3")
    assert_close(
        k3, torch.tensor([0.10653065971263342 + 0.7182818284590451, 0.10653065971263342], dtype=torch.float64)
    )


def test_kl_loss_term_is_coef_times_k3_with_gradient_through_the_policy():
    """GRPO's loss term: coef * (e^-d + d - 1); its gradient in logp is coef * (1 - e^-d)."""
    logp = LOGP.clone().requires_grad_(True)
    term = kl_loss_term(logp, REF, 0.1)
    assert_close(
        term.detach(),
        0.1 * torch.tensor([[0.10653065971263342, 0.7182818284590451, 0.0]], dtype=torch.float64),
    )
    term.sum().backward()
    d = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    assert_close(logp.grad, 0.1 * (1 - torch.exp(-d)))
