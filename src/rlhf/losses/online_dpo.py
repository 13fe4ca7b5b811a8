"""Online DPO: the DPO loss on pairs drawn from the policy's own fresh samples.

Each step samples n >= 2 responses per prompt; the reward (a reward model or a function) picks the
best and the worst of each prompt's samples, and the sigmoid DPO loss (Rafailov et al. 2023, eq. 7)
trains on that pair against the reference policy (Guo et al. 2024, "Direct Language Model
Alignment from Online AI Feedback"; best vs worst of n as in Dong et al. 2024, "RLHF Workflow").
The data are on-policy, as in RL, and there is no critic and no advantage: beta is the KL strength.
A prompt whose samples all score the same gives no pair.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rlhf.losses.dpo import PairLogps, sigmoid_loss
from rlhf.losses.groups import group_pairs


class OnlineDPOOutput(NamedTuple):
    losses: torch.Tensor
    """(G,) per-prompt loss; 0 where the group has no pair"""
    pairs: torch.Tensor
    """() number of prompts with a pair"""
    correct: torch.Tensor
    """() pairs whose chosen implicit reward is above the rejected one (detached)"""
    margin: torch.Tensor
    """() sum over pairs of the implicit-reward margin r_c - r_r (detached)"""


def online_dpo_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    group_size: int,
    beta: float,
) -> OnlineDPOOutput:
    """The DPO loss of each group's best-vs-worst pair (``rlhf.losses.groups.group_pairs``).

    Args:
        logp: per-token log-probs of the sampled responses under the policy (carries the gradient).
        ref_logp: the same under the reference.
        mask: valid response tokens.
        scores: the sequence rewards that pick the pairs; consecutive rows are one prompt's samples.
        group_size: samples per prompt.
        beta: DPO's beta.

    Shape: logp, ref_logp, mask (N, T); scores (N,) with N = G * group_size -> losses (G,), the rest ().
    """
    m = mask.to(logp.dtype)
    seq, ref = (logp * m).sum(1), (ref_logp * m).sum(1)  # (N,)
    counts = m.sum(1)
    chosen, rejected, valid = group_pairs(scores, group_size)
    lp = PairLogps(seq[chosen], seq[rejected], ref[chosen], ref[rejected], counts[chosen], counts[rejected])
    out = sigmoid_loss(lp, beta)
    v = valid.to(out.losses.dtype)
    margin = (out.chosen_rewards - out.rejected_rewards) * v
    return OnlineDPOOutput(out.losses * v, v.sum(), ((margin > 0).to(v.dtype) * v).sum(), margin.sum())
