"""Advantage estimators and the masked statistics they need.

- GAE for PPO with a learned value (Schulman et al. 2016, "High-Dimensional Continuous Control
  Using Generalized Advantage Estimation", eq. 16), per token.
- Group-relative advantages for GRPO (Shao et al. 2024, DeepSeekMath, sec. 4.1.2, outcome
  supervision) and leave-one-out baselines for RLOO (Kool et al. 2019; Ahmadian et al. 2024),
  one scalar per sampled response.

Masks are (B, T), float or bool, 1 on valid response tokens. Positions where the mask is 0 never
influence a result, whatever they hold (padding may be garbage), and outputs are 0 there.
"""

from __future__ import annotations

import torch

from rlhf.losses.groups import grouped


def _valid(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not x * mask: 0 * nan = nan, and padding may hold anything
    return torch.where(mask.bool(), x, torch.zeros_like(x))


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of x over positions where mask is nonzero.

    Shape: x, mask (B, T) -> () if dim is None, else x with dim reduced.
    """
    valid = _valid(x, mask)
    return valid.sum() if dim is None else valid.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over positions where mask is nonzero (nan where there are none).

    Shape: x, mask (B, T) -> () if dim is None, else x with dim reduced.
    """
    count = mask.to(x.dtype)
    count = count.sum() if dim is None else count.sum(dim=dim)
    return masked_sum(x, mask, dim) / count


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of x over all positions where mask is nonzero.

    With unbiased=True, Bessel's correction n / (n - 1) is applied (needs n >= 2).

    Shape: x, mask (B, T) -> ().

    Raises ValueError when the mask selects too few elements for the requested estimate.
    """
    n = int(mask.bool().sum())
    if n < (2 if unbiased else 1):
        raise ValueError(f"masked_var needs at least {2 if unbiased else 1} valid elements, the mask has {n}")
    mean = masked_mean(x, mask)
    var = masked_sum((x - mean) ** 2, mask) / n
    return var * (n / (n - 1)) if unbiased else var


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise x to zero mean and unit variance over its valid elements.

        (x - mean) / sqrt(var + eps), var unbiased, both over all masked elements of the batch.

    shift_mean=False adds the mean back, keeping the sign information of the rewards; this is how
    lm-human-preferences (Ziegler et al. 2019) whitens rewards, while advantages are fully whitened.

    Shape: x, mask (B, T) -> (B, T), 0 where mask is 0.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return _valid(out, mask)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016, eq. 16) over each row's valid tokens.

        delta_t = r_t + gamma * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * A_{t+1}

    The episode ends at each row's last valid token, so V and A after it are 0 (no bootstrap). Valid
    tokens must be contiguous in each row (right-padded); rows may have different lengths.

    Args:
        rewards: per-token rewards r_t (e.g. from rewards.shape_rewards).
        values: value estimates V_t at rollout time (no gradient expected).
        mask: 1 on valid response tokens.
        gamma: discount factor.
        lam: GAE lambda; lam = 1 gives the Monte Carlo return minus V, lam = 0 the one-step TD error.

    Shape: rewards, values, mask (B, T) -> advantages (B, T), returns (B, T).

    Returns (advantages, returns) with returns = advantages + values (the value-function target),
    both 0 where mask is 0.
    """
    rewards = _valid(rewards, mask)
    values = _valid(values, mask)  # V = 0 past the last valid token: the episode has ended
    B, T = rewards.shape
    next_value = torch.zeros(B, dtype=values.dtype, device=values.device)
    next_adv = torch.zeros_like(next_value)
    advantages = []
    # T is a few hundred response tokens at most; a Python loop is clear and cheap next to generation
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = _valid(delta + gamma * lam * next_adv, mask[:, t])
        next_value = values[:, t]
        advantages.append(next_adv)
    adv = torch.stack(advantages[::-1], dim=1)  # (B, T)
    return adv, _valid(adv + values, mask)


ADVANTAGE_SCALES = ("group", "batch", "none")


def group_advantages(
    scores: torch.Tensor,
    group_size: int,
    scale: str = "group",
    eps: float = 1e-6,
    batch_std: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """GRPO group-relative advantages (Shao et al. 2024, DeepSeekMath, sec. 4.1.2).

        a_i = (r_i - mean(r_group)) / (s + eps)

    with s, by ``scale``:

        group   std(r_group), the paper's
        batch   std of every score in the rollout batch (group mean, batch std: "Lite PPO", Liu et
                al. 2025, "Tricks or Traps?", sec. 4.1); ``batch_std`` passes it in when the batch
                spans processes, else it is taken over ``scores``
        none    1: no division (Dr. GRPO, Liu et al. 2025, sec. 3.1)

    Dividing by a group's own std up-weights prompts whose samples all score about the same (too
    easy or too hard): a difference of 0.01 becomes +-1. "batch" and "none" do not.

    std is unbiased (torch's default), as in the paper's reference implementations. Consecutive
    rows are one prompt's samples.

    Shape: scores (N,) with N = G * group_size -> (N,).

    Raises ValueError if group_size < 2, N is not divisible by group_size, or scale is unknown.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; expected one of {', '.join(ADVANTAGE_SCALES)}")
    groups = grouped(scores, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        std = scores.std() if batch_std is None else batch_std
        centred = centred / (std + eps)
    return centred.reshape(-1)


def uniform_groups(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Which groups' samples all scored the same, so that their group-relative advantages are 0
    and they teach nothing (DAPO, Yu et al. 2025, sec. 3.2, filters them by resampling).

    Shape: scores (N,) -> (G,) bool.
    """
    groups = grouped(scores, group_size)
    return (groups == groups[:, :1]).all(dim=1)


def rloo_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out advantages (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics").

        a_i = r_i - (1 / (K - 1)) * sum_{j != i} r_j  =  K / (K - 1) * (r_i - mean(r_group))

    Each sample's baseline excludes itself, so it is independent of that sample and the estimate
    stays unbiased. Consecutive rows are one prompt's samples.

    Shape: scores (N,) with N = G * group_size -> (N,).

    Raises ValueError if group_size < 2 or N is not divisible by group_size.
    """
    groups = grouped(scores, group_size)
    k = groups.shape[1]
    baseline = (groups.sum(dim=1, keepdim=True) - groups) / (k - 1)
    return (groups - baseline).reshape(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] over valid tokens: how much of the return V explains.

    1 is a perfect value function, 0 no better than a constant, negative worse than one.

    Shape: values, returns, mask (B, T) -> float; nan if Var[returns] == 0 or the mask is empty.
    """
    if not mask.bool().any():
        return float("nan")
    # biased variances: the Bessel factors cancel in the ratio, and one valid token is allowed
    var_returns = masked_var(returns, mask, unbiased=False)
    if var_returns == 0:
        return float("nan")
    return float(1 - masked_var(returns - values, mask, unbiased=False) / var_returns)
