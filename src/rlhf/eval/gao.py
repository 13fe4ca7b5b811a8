"""Gao et al. (2022), "Scaling Laws for Reward Model Overoptimization", eqs. 1-2: the gold reward
as a function of the distance d = sqrt(KL) of the optimised policy from the initial one.

    best-of-n:  R(d) = d (alpha - beta d)
    RL:         R(d) = d (alpha - beta log d)

Both are linear in (alpha, beta), so ordinary least squares fits them exactly. Where the paper
measures R from the initial policy's score (R(0) = 0), we also fit the offset R0 (a third
column of ones): a demo's curves start from a noisy estimate of that score, and pinning the fit to
one noisy point would tilt it. The fitted gold peaks (the point to stop) where dR/dd = 0:
d* = alpha / (2 beta) for best-of-n, log d* = alpha / beta - 1 for RL, both only when beta > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Form = Literal["bon", "rl"]


@dataclass(frozen=True)
class GaoFit:
    form: Form
    """'bon': R = d (alpha - beta d); 'rl': R = d (alpha - beta log d)"""
    alpha: float
    beta: float
    r0: float
    """the fitted reward at d = 0 (the initial policy)"""
    points: int
    """how many (KL, reward) points were fitted"""

    def predict(self, kl: float | np.ndarray) -> np.ndarray:
        """The fitted reward at KL ``kl`` (nats)."""
        d = np.sqrt(np.asarray(kl, dtype=float))
        return self.r0 + d * self.alpha - self.beta * _shape(self.form, d)

    @property
    def peak_d(self) -> float | None:
        """sqrt(KL) at which the fitted reward is highest; None where it never turns down."""
        if self.beta <= 0:
            return None
        if self.form == "bon":
            return self.alpha / (2 * self.beta) if self.alpha > 0 else None
        return math.exp(self.alpha / self.beta - 1)

    @property
    def peak_kl(self) -> float | None:
        d = self.peak_d
        return None if d is None else d * d

    def best_kl(self, kl_max: float) -> float:
        """The KL in [0, ``kl_max``] (the span a run covered) where the fitted reward is highest:
        the point to stop. The peak where it lies inside, else the better end: 0 when the fitted
        reward only falls, ``kl_max`` when it is still rising at the run's end."""
        candidates = [0.0, kl_max]
        peak = self.peak_kl
        if peak is not None and 0.0 < peak < kl_max:
            candidates.append(peak)
        values = self.predict(np.array(candidates))
        return candidates[int(np.argmax(values))]


def _shape(form: Form, d: np.ndarray) -> np.ndarray:
    """The beta term's function of d: d^2 (best-of-n) or d log d (RL, 0 at d = 0)."""
    if form == "bon":
        return d * d
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)


def fit_gao(kl: list[float], reward: list[float], form: Form) -> GaoFit:
    """Least-squares fit of Gao et al.'s ``form`` ('bon' or 'rl') plus an offset to points
    (``kl[i]``, ``reward[i]``); KL in nats, clipped at 0 (a sampled estimate can dip below).

    Raises ValueError with fewer than 3 points or fewer than 3 distinct KLs (the 3 unknowns
    would not be determined)."""
    if form not in ("bon", "rl"):
        raise ValueError(f"form must be 'bon' or 'rl', got {form!r}")
    if len(kl) != len(reward):
        raise ValueError(f"{len(kl)} KL values for {len(reward)} rewards")
    x = np.sqrt(np.clip(np.asarray(kl, dtype=float), 0.0, None))  # (N,) d = sqrt(KL)
    y = np.asarray(reward, dtype=float)  # (N,)
    if len(np.unique(x)) < 3:
        raise ValueError(f"need at least 3 distinct KL values to fit 3 coefficients, got {len(np.unique(x))}")
    design = np.stack([np.ones_like(x), x, -_shape(form, x)], axis=1)  # (N, 3): R0, alpha, beta
    (r0, alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    return GaoFit(form, float(alpha), float(beta), float(r0), len(x))
