"""Controllers for the coefficient of the per-token KL penalty to the reference policy.

Fixed: a constant beta. Adaptive: Ziegler et al. 2019 ("Fine-Tuning Language Models from Human
Preferences", sec. 2.2), a proportional controller that steers the measured KL towards a target:

    e = clip(KL / KL_target - 1, -0.2, 0.2),    beta <- beta * (1 + e * n_steps / horizon)
"""

from __future__ import annotations


class FixedKLController:
    """A constant KL coefficient; update is a no-op so the training loop treats both kinds alike."""

    def __init__(self, coef: float) -> None:
        if coef < 0:
            raise ValueError(f"KL coefficient must be >= 0, got {coef}")
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Does nothing: the coefficient is fixed."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Ziegler et al. 2019, sec. 2.2: move beta towards the value that gives KL == target.

    The error is clipped to +-0.2 so one noisy KL measurement cannot change beta by more than
    20% * n_steps / horizon; horizon is in samples (episodes), n_steps the samples since the
    last update.
    """

    def __init__(self, init_coef: float, target: float, horizon: int) -> None:
        if target <= 0:
            raise ValueError(f"adaptive KL target must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"adaptive KL horizon must be > 0, got {horizon}")
        if init_coef < 0:
            raise ValueError(f"initial KL coefficient must be >= 0, got {init_coef}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Multiply the coefficient by 1 + clip(current_kl / target - 1, -0.2, 0.2) * n_steps / horizon."""
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


def make_kl_controller(coef: float, target: float, horizon: int) -> FixedKLController | AdaptiveKLController:
    """Adaptive toward ``target`` KL per sequence when ``target`` > 0 (Ziegler et al. 2019), else fixed."""
    return AdaptiveKLController(coef, target, horizon) if target > 0 else FixedKLController(coef)
