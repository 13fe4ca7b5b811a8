"""The Gao et al. (2022) fits recover known coefficients and their peaks."""

import math

import numpy as np
import pytest

from rlhf.eval.gao import fit_gao


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_recovers_known_coefficients_from_exact_points(form):
    alpha, beta, r0 = 0.8, 0.3, -0.25
    kl = [0.0, 0.1, 0.4, 1.0, 2.0, 4.0, 9.0]
    d = np.sqrt(kl)
    shape = d * d if form == "bon" else np.where(d > 0, d * np.log(np.maximum(d, 1e-300)), 0.0)
    reward = r0 + alpha * d - beta * shape
    fit = fit_gao(kl, list(reward), form)
    assert (fit.alpha, fit.beta, fit.r0) == pytest.approx((alpha, beta, r0), abs=1e-9)
    assert fit.points == 7
    np.testing.assert_allclose(fit.predict(np.array(kl)), reward, atol=1e-9)


def test_fit_recovers_coefficients_through_noise():
    rng = np.random.default_rng(0)
    kl = rng.uniform(0, 16, 400)
    d = np.sqrt(kl)
    reward = 1.0 * d - 0.5 * d * np.log(np.maximum(d, 1e-12)) + rng.normal(0, 0.05, 400)
    fit = fit_gao(list(kl), list(reward), "rl")
    assert fit.alpha == pytest.approx(1.0, abs=0.05) and fit.beta == pytest.approx(0.5, abs=0.03)


def test_peaks_are_where_the_fitted_reward_is_highest():
    # best-of-n: d* = alpha / (2 beta); RL: log d* = alpha / beta - 1
    for form, alpha, beta, expected_d in (("bon", 1.2, 0.4, 1.5), ("rl", 0.6, 0.3, math.exp(1.0))):
        kl = [0.0, 0.5, 1.0, 3.0, 6.0, 12.0]
        d = np.sqrt(kl)
        shape = d * d if form == "bon" else np.where(d > 0, d * np.log(np.maximum(d, 1e-300)), 0.0)
        fit = fit_gao(kl, list(alpha * d - beta * shape), form)
        assert fit.peak_d == pytest.approx(expected_d)
        assert fit.peak_kl == pytest.approx(expected_d**2)
        grid = np.linspace(0, 30, 300_001)
        assert math.sqrt(grid[np.argmax(fit.predict(grid))]) == pytest.approx(expected_d, abs=1e-3)


def test_the_stop_point_is_the_best_fitted_kl_within_the_run():
    kl = [0.0, 0.5, 1.0, 3.0, 6.0, 12.0]
    d = np.sqrt(kl)
    rising_then_falling = fit_gao(kl, list(0.6 * d - 0.3 * d * np.log(np.maximum(d, 1e-300))), "rl")
    assert rising_then_falling.best_kl(12.0) == pytest.approx(math.e**2)  # the peak, inside the run
    assert rising_then_falling.best_kl(4.0) == 4.0  # a run that stopped before it: still rising
    falling = fit_gao(kl, list(-0.2 * d + 0.05 * d * np.log(np.maximum(d, 1e-300))), "rl")
    assert falling.beta < 0 and falling.best_kl(12.0) == 0.0  # gold only fell: no step helped


def test_a_reward_that_never_turns_down_has_no_peak():
    kl = [0.0, 1.0, 2.0, 4.0]
    fit = fit_gao(kl, [0.0, 1.0, math.sqrt(2) + 0.2, 2.5], "bon")
    assert fit.beta < 0 and fit.peak_kl is None


def test_too_few_points_are_refused():
    with pytest.raises(ValueError, match="3 distinct KL"):
        fit_gao([0.0, 1.0, 1.0], [0.0, 0.5, 0.5], "rl")
    with pytest.raises(ValueError, match="form"):
        fit_gao([0.0, 1.0, 2.0], [0.0, 0.5, 0.5], "linear")
