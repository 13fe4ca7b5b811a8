"""KTO: Kahneman-Tversky optimisation on unpaired feedback (Ethayarajh et al. 2024, eq. 8).

Each example is one completion y of a prompt x, marked desirable (liked) or undesirable. With the
log-ratio r = log pi(y|x) - log pi_ref(y|x) and the reference point z0, an estimate of
KL(pi(y'|x) || pi_ref(y'|x)):

    v(x, y) = lambda_D * sigmoid(beta (r - z0))    if y is desirable
              lambda_U * sigmoid(beta (z0 - r))    if y is undesirable
    loss    = lambda_y - v(x, y)

so a desirable completion gains by rising above the reference point and an undesirable one by
falling below it. As in the paper (sec. 4.1), z0 is estimated from mismatched pairs: each example
also carries a completion y' written for another prompt, and z0 = max(0, mean over the batch of
log pi(y'|x) - log pi_ref(y'|x)). It is detached: no gradient flows through the reference point.

Departures: none in the loss. The batch whose mean gives z0 is what the caller passes (one
micro-batch in `rlhf dpo`), and the mismatched completions are assigned once, when the data is
read (rlhf.data.unpaired), as TRL does, rather than re-drawn every step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class KTOOutput(NamedTuple):
    losses: torch.Tensor
    """(N,) lambda_y - v(x, y)"""
    rewards: torch.Tensor
    """(N,) beta * r, the implicit reward of each completion, detached"""
    reference_point: torch.Tensor
    """() beta * z0, detached"""


def kl_reference_point(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> torch.Tensor:
    """z0 = max(0, mean(log pi(y'|x) - log pi_ref(y'|x))) over mismatched pairs, detached.

    Shape: (N,), (N,) -> ()
    """
    return (policy_kl.float() - ref_kl.float()).mean().clamp(min=0).detach()


def kto_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    policy_kl: torch.Tensor,
    ref_kl: torch.Tensor,
    desirable: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> KTOOutput:
    """KTO per-example losses (module docstring).

    policy, ref: summed log-probs of each completion under pi and pi_ref; policy_kl, ref_kl:
    those of the mismatched completion (another prompt's) for the same prompt; desirable: bool.

    Shape: each (N,) -> KTOOutput
    """
    r = policy.float() - ref.float()  # (N,)
    z0 = kl_reference_point(policy_kl, ref_kl)  # ()
    liked = desirable.bool()
    value = torch.where(
        liked,
        desirable_weight * torch.sigmoid(beta * (r - z0)),
        undesirable_weight * torch.sigmoid(beta * (z0 - r)),
    )
    lam = torch.where(liked, desirable_weight, undesirable_weight).to(value.dtype)
    return KTOOutput(lam - value, beta * r.detach(), beta * z0)
