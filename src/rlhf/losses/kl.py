"""Per-token estimators of KL(pi || ref) from tokens sampled from pi.

John Schulman, "Approximating KL divergence" (2020, http://joschu.net/blog/kl-approx.html). With
the log ratio log(ref / pi) = ref_logp - logp evaluated at x ~ pi:

    k1 = -log(ref / pi)                       unbiased, high variance, can be negative
    k2 = 0.5 * log(ref / pi)^2                biased, low variance, >= 0
    k3 = (ref / pi) - 1 - log(ref / pi)       unbiased, low variance, >= 0
    abs = |log(ref / pi)|                     biased, >= 0 (used by some RLHF code bases)

Each estimator is a plain function, chosen by name from KL_ESTIMATORS, so a new one is one entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


def _k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp) ** 2


def _k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    log_ratio = ref_logp - logp  # log(ref / pi); its exp is the importance weight under pi
    return torch.exp(log_ratio) - log_ratio - 1


def _abs(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return (logp - ref_logp).abs()


KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": _k1,
    "k2": _k2,
    "k3": _k3,
    "abs": _abs,
}
"""Name -> elementwise estimator of KL(pi || ref) taking (logp, ref_logp)."""


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) at tokens sampled from pi (Schulman 2020, "Approximating KL").

    Args:
        logp: log pi(x_t | x_<t) of the sampled tokens under the policy.
        ref_logp: log ref(x_t | x_<t) of the same tokens under the reference model.
        kind: one of KL_ESTIMATORS ("k1", "k2", "k3", "abs").

    Shape: logp, ref_logp (B, T) (any matching shape) -> (B, T), elementwise, no masking.

    Returns the estimate at every position; the caller masks padding.
    """
    try:
        estimator = KL_ESTIMATORS[kind]
    except KeyError:
        raise ValueError(f"unknown KL estimator {kind!r}; valid names: {', '.join(KL_ESTIMATORS)}") from None
    return estimator(logp, ref_logp)


def sequence_kl(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kind: str = "k1"
) -> torch.Tensor:
    """Each response's KL(pi || ref): the per-token estimate ``kind`` summed over its valid tokens.

    RLOO subtracts ``kl_coef`` times this from the sequence reward before the baseline (Ahmadian et
    al. 2024, sec. 3: the KL penalty is a sequence-level reward term, not a per-token one).

    Shape: logp, ref_logp, mask (B, T) -> (B,).
    """
    return (kl_penalty(logp, ref_logp, kind) * mask).sum(1)


def kl_loss_term(logp: torch.Tensor, ref_logp: torch.Tensor, coef: float) -> torch.Tensor:
    """GRPO's per-token KL term of the loss, ``coef * k3`` (DeepSeekMath, Shao et al. 2024, eq. 3-4):
    the KL is added to the loss, with gradient through ``logp``, instead of to the reward.

    Shape: logp, ref_logp (B, T) -> (B, T), no masking (the loss's aggregation weights mask it).
    """
    return coef * kl_penalty(logp, ref_logp, "k3")
