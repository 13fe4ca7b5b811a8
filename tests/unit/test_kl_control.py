"""rlhf.rollout.kl_control: fixed and adaptive (Ziegler et al. 2019) KL coefficients."""

from __future__ import annotations

import pytest
from torch.testing import assert_close

from rlhf.rollout.kl_control import AdaptiveKLController, FixedKLController


def test_fixed_controller_never_moves():
    ctl = FixedKLController(0.05)
    ctl.update(current_kl=100.0, n_steps=1000)
    assert ctl.value == 0.05
    restored = FixedKLController(1.0)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == 0.05


def test_adaptive_controller_by_hand():
    # n_steps / horizon = 0.1, so value *= 1 + 0.1 * clip(kl / 6 - 1, -0.2, 0.2)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    expected = [
        (6.6, 0.101),  # error 0.1 -> x1.01
        (12.0, 0.10302),  # error 1.0 clipped to 0.2 -> x1.02
        (0.0, 0.1009596),  # error -1.0 clipped to -0.2 -> x0.98
        (5.4, 0.099950004),  # error -0.1 -> x0.99
        (6.0, 0.099950004),  # on target: no change
    ]
    for kl, value in expected:
        ctl.update(kl, n_steps=10)
        assert_close(ctl.value, value)


def test_adaptive_error_is_clipped_at_02():
    values = []
    for kl in (7.2, 60.0, 1e9):  # errors 0.2, 9, huge
        ctl = AdaptiveKLController(1.0, target=6.0, horizon=10)
        ctl.update(kl, n_steps=5)
        values.append(ctl.value)
    assert_close(values, [1.1, 1.1, 1.1])
    ctl = AdaptiveKLController(1.0, target=6.0, horizon=10)
    ctl.update(0.0, n_steps=5)
    assert_close(ctl.value, 0.9)


def test_adaptive_state_dict_roundtrip():
    ctl = AdaptiveKLController(0.2, target=1.0, horizon=10)
    ctl.update(2.0, n_steps=10)  # x1.2
    other = AdaptiveKLController(0.2, target=1.0, horizon=10)
    other.load_state_dict(ctl.state_dict())
    assert_close(other.value, 0.24)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": 0.0, "horizon": 10}, "target must be > 0"),
        ({"target": -1.0, "horizon": 10}, "target must be > 0"),
        ({"target": 6.0, "horizon": 0}, "horizon must be > 0"),
    ],
)
def test_adaptive_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveKLController(0.1, **kwargs)


def test_negative_coefficients_are_rejected():
    with pytest.raises(ValueError, match="must be >= 0"):
        FixedKLController(-0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        AdaptiveKLController(-0.1, target=6.0, horizon=10)
