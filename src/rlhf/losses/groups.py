"""Rows that come in groups: consecutive rows are one prompt's samples (GRPO, RLOO, online DPO).

Pure functions shared by the group baselines (rlhf.rollout.advantages) and online DPO's pairs
(rlhf.losses.online_dpo).
"""

from __future__ import annotations

import torch


def grouped(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) scores -> (G, K): row g holds prompt g's K = group_size samples, consecutive in the input.

    Raises ValueError if scores is not 1-D, group_size < 2, or N is not divisible by group_size.
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D (N,), got shape {tuple(scores.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 to have a baseline within each group, got {group_size}")
    n = scores.shape[0]
    if n % group_size != 0:
        raise ValueError(f"number of scores {n} is not divisible by group_size {group_size}")
    return scores.view(n // group_size, group_size)  # (G, K): row g holds prompt g's samples


def group_pairs(scores: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each group's best and worst sample as a preference pair, for online DPO (Guo et al. 2024,
    "Direct Language Model Alignment from Online AI Feedback"; the best-vs-worst choice of Dong et
    al. 2024): row indices of the chosen and the rejected sample (the first of equals), and whether
    the group has a preference at all (its scores are not all equal).

    Shape: scores (N,) with N = G * group_size -> chosen (G,), rejected (G,), valid (G,) bool.
    """
    groups = grouped(scores, group_size)
    base = torch.arange(groups.shape[0], device=scores.device) * group_size
    hi, lo = groups.argmax(dim=1), groups.argmin(dim=1)
    return base + hi, base + lo, groups.amax(dim=1) > groups.amin(dim=1)
