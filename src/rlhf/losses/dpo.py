"""Direct preference optimisation and its relatives, on per-sequence log-probabilities.

Every loss reads the summed log-probabilities of the chosen (preferred) and rejected responses
under the policy and under the frozen reference, and returns per-pair losses plus the implicit
rewards of DPO (Rafailov et al. 2023, eq. 5, without the prompt-only log Z term, which cancels
in every comparison):

    r_c = beta * (log pi(y_c|x) - log pi_ref(y_c|x)),   r_r likewise for y_r.

With the reference-relative margin h = (log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r)):

    sigmoid  -log sigmoid(beta h)                                   DPO, Rafailov et al. 2023, eq. 7
    cdpo     -(1-eps) log sigmoid(beta h) - eps log sigmoid(-beta h)  Mitchell 2023, "A note on DPO
                                                                    with noisy preferences", eq. 3
    ipo      (h_mean - 1 / (2 beta))^2                              Azar et al. 2023, eq. 17 (beta is tau)
    hinge    max(0, 1 - beta h)                                     SLiC-HF, Zhao et al. 2023, eq. 1

and one loss without a reference, on per-token mean log-probabilities of the policy alone:

    simpo    -log sigmoid(beta (log pi(y_c)/|y_c| - log pi(y_r)/|y_r|) - gamma)
                                                                    SimPO, Meng et al. 2024, eq. 6

and one on unpaired feedback (a completion marked desirable or not), laid out as pairs whose
"chosen" side is the completion and whose "rejected" side is a completion of another prompt:

    kto      lambda_y - lambda_y sigmoid(+-beta (r - z0))           KTO, Ethayarajh et al. 2024, eq. 8
                                                                    (rlhf/losses/kto.py)

Any of them can add the chosen response's per-token NLL, alpha * -log pi(y_c)/|y_c| (``add_nll``;
RPO, Pang et al. 2024, "Iterative Reasoning Preference Optimization", eq. 1): DPO lowers the
likelihood of both responses of a pair while it widens their gap, and the NLL term keeps the
chosen one likely.

Departures from the papers, and why:
  * IPO: h_mean is built from per-token MEAN log-probabilities (sum / response tokens), as in the
    IPO reference implementations (and TRL), not sums: eq. 17's target 1/(2 tau) is a fixed gap,
    and with sums it would mean a different thing for a 5-token and a 500-token answer. The
    implicit rewards returned for IPO are still the summed ones above, so the logged rewards,
    margins and accuracy mean the same thing for every loss.
  * SimPO: its implicit rewards are its own, beta * log pi(y)/|y| (eq. 4), the quantities its
    loss compares; there is no reference.
  * hinge: SLiC-HF's calibration term max(0, delta - log P(y+|x) + log P(y-|x)) is applied to
    the reference-relative margin h instead of the raw log-likelihood gap, with delta = 1/beta and
    the whole scaled by beta: max(0, 1 - beta h) = beta max(0, 1/beta - h). This is the form of
    the DPO-family implementations; through the reference it is comparable to the other losses.

Losses are chosen by name from ``DPO_LOSSES``; a new loss is a new function there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from rlhf.data.tokenize import IGNORE
from rlhf.losses.logprobs import at_least_f32, gathered_logprobs


class PairLogps(NamedTuple):
    """Per-sequence log-probabilities of a batch of P preference pairs, each (P,)."""

    policy_chosen: torch.Tensor
    """sum over response tokens of log pi(y_c|x)"""
    policy_rejected: torch.Tensor
    ref_chosen: torch.Tensor
    """the same under the reference pi_ref (no gradient)"""
    ref_rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    """response token counts (IPO's length normalisation)"""
    rejected_tokens: torch.Tensor
    desirable: torch.Tensor | None = None
    """KTO only: (P,) 1 where the completion ("chosen") was liked, 0 where not; the "rejected"
    side then holds a completion of another prompt, the KL sample"""


class DPOOutput(NamedTuple):
    losses: torch.Tensor
    """(P,) per-pair loss"""
    chosen_rewards: torch.Tensor
    """(P,) beta * (log pi(y_c) - log pi_ref(y_c)), detached"""
    rejected_rewards: torch.Tensor
    """(P,) beta * (log pi(y_r) - log pi_ref(y_r)), detached"""


def _ratios(lp: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-ratios log pi/pi_ref of chosen and rejected.  Shape: (P,), (P,)"""
    return at_least_f32(lp.policy_chosen) - at_least_f32(lp.ref_chosen), at_least_f32(
        lp.policy_rejected
    ) - at_least_f32(lp.ref_rejected)


def _output(losses: torch.Tensor, lp: PairLogps, beta: float) -> DPOOutput:
    chosen, rejected = _ratios(lp)
    return DPOOutput(losses, beta * chosen.detach(), beta * rejected.detach())


def sigmoid_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0, gamma: float = 0.0) -> DPOOutput:
    """DPO (Rafailov et al. 2023, eq. 7): -log sigmoid(beta h).  Shape: (P,) each"""
    chosen, rejected = _ratios(lp)
    return _output(-F.logsigmoid(beta * (chosen - rejected)), lp, beta)


def cdpo_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0, gamma: float = 0.0) -> DPOOutput:
    """Conservative DPO (Mitchell 2023, eq. 3): each label is flipped with probability
    ``label_smoothing``, so the target is the expected DPO loss under that noise.  Shape: (P,) each"""
    chosen, rejected = _ratios(lp)
    z = beta * (chosen - rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return _output(losses, lp, beta)


def ipo_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0, gamma: float = 0.0) -> DPOOutput:
    """IPO (Azar et al. 2023, eq. 17): (h_mean - 1/(2 beta))^2 on per-token mean log-ratios
    (module docstring). Squared, so unlike DPO it stops pushing once the gap reaches 1/(2 beta).

    Shape: (P,) each
    """
    n_c, n_r = at_least_f32(lp.chosen_tokens).clamp(min=1), at_least_f32(lp.rejected_tokens).clamp(min=1)
    chosen, rejected = _ratios(lp)
    h_mean = chosen / n_c - rejected / n_r
    return _output((h_mean - 1 / (2 * beta)) ** 2, lp, beta)


def hinge_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0, gamma: float = 0.0) -> DPOOutput:
    """SLiC-HF calibration (Zhao et al. 2023, eq. 1) on the reference-relative margin:
    max(0, 1 - beta h), zero once h exceeds 1/beta.  Shape: (P,) each"""
    chosen, rejected = _ratios(lp)
    return _output(torch.relu(1 - beta * (chosen - rejected)), lp, beta)


def simpo_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0, gamma: float = 0.0) -> DPOOutput:
    """SimPO (Meng et al. 2024, eq. 6): -log sigmoid(r_c - r_r - gamma) with the length-normalised
    rewards r = beta * log pi(y)/|y| (eq. 4) of the policy alone; gamma is the target reward
    margin. Reads no reference log-probs.  Shape: (P,) each"""
    n_c, n_r = at_least_f32(lp.chosen_tokens).clamp(min=1), at_least_f32(lp.rejected_tokens).clamp(min=1)
    r_c, r_r = beta * at_least_f32(lp.policy_chosen) / n_c, beta * at_least_f32(lp.policy_rejected) / n_r
    return DPOOutput(-F.logsigmoid(r_c - r_r - gamma), r_c.detach(), r_r.detach())


def kto_pair_loss(
    lp: PairLogps,
    beta: float,
    label_smoothing: float = 0.0,
    gamma: float = 0.0,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> DPOOutput:
    """KTO (Ethayarajh et al. 2024, eq. 8; rlhf.losses.kto) on unpaired rows: the completion's
    log-probs in the "chosen" slots, the mismatched completion's (the KL sample) in the "rejected"
    ones. So that the pair statistics mean something, each example's two rewards are its side of
    the reference point: chosen_rewards is the one that should be higher (the completion's reward
    beta r if desirable, else beta z0), rejected_rewards the other; ``accuracy`` is then the share
    of completions on their label's side of the reference point.  Shape: (P,) each"""
    from rlhf.losses.kto import kto_loss

    if lp.desirable is None:
        raise ValueError("kto needs PairLogps.desirable (unpaired records with a label)")
    out = kto_loss(
        lp.policy_chosen,
        lp.ref_chosen,
        lp.policy_rejected,
        lp.ref_rejected,
        lp.desirable,
        beta,
        desirable_weight,
        undesirable_weight,
    )
    point = out.reference_point.expand_as(out.rewards)
    liked = lp.desirable.bool()
    return DPOOutput(
        out.losses, torch.where(liked, out.rewards, point), torch.where(liked, point, out.rewards)
    )


def add_nll(out: DPOOutput, lp: PairLogps, alpha: float) -> DPOOutput:
    """The pair losses plus alpha times the chosen response's per-token NLL, -log pi(y_c)/|y_c|
    (RPO, Pang et al. 2024, eq. 1). alpha = 0 returns ``out`` unchanged.  Shape: (P,) each"""
    if not alpha:
        return out
    nll = -at_least_f32(lp.policy_chosen) / at_least_f32(lp.chosen_tokens).clamp(min=1)
    return out._replace(losses=out.losses + alpha * nll)


DPO_LOSSES: dict[str, Callable[[PairLogps, float, float, float], DPOOutput]] = {
    "sigmoid": sigmoid_loss,
    "cdpo": cdpo_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
    "simpo": simpo_loss,
    "kto": kto_pair_loss,
}
SMOOTHED_LOSSES = ("cdpo",)
"""losses that read label_smoothing"""
REFERENCE_FREE_LOSSES = ("simpo",)
"""losses that read no reference log-probs (and gamma)"""
UNPAIRED_LOSSES = ("kto",)
"""losses that read unpaired records {prompt, completion, label} and the class weights"""


def sequence_logps(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the targets of each row, and how many there were.

    ``targets[r, t, s]`` is the token that position t of row r predicts for sequence s of that
    row, IGNORE where there is none: S = 2 when a row holds a prompt and both responses (a
    position can then predict two tokens: the prompt's last one predicts the first token of each
    response), S = 1 for one response per row. log p = logit[target] - logsumexp(logits): no
    (R, K, V) log-softmax is kept, and bf16 logits are read in float32.

    Shape: logits (R, K, V), targets (R, K, S) -> sums (R, S), counts (R, S)
    """
    mask = targets != IGNORE
    logp = torch.where(mask, gathered_logprobs(logits, targets.clamp(min=0)), 0.0)  # (R, K, S)
    return logp.sum(1), mask.sum(1).to(logp.dtype)


# ---------------------------------------------------------------- metrics

STAT_NAMES = ("loss", "weight", "correct", "margin", "reward_chosen", "reward_rejected",
              "logp_chosen", "logp_rejected", "pairs")  # fmt: skip
"""what ``pair_stats`` sums, in order"""


def pair_stats(out: DPOOutput, lp: PairLogps, weight: torch.Tensor) -> torch.Tensor:
    """Sums over a batch of pairs, to be reduced across micro-batches and processes before
    ``summarize`` divides: weighted loss, weight, implicit-reward accuracy (chosen rewarded
    strictly above rejected), reward margin, rewards, policy log-probs, pairs.

    Shape: out and lp of P pairs, weight (P,) -> (9,)
    """
    rc, rr = out.chosen_rewards, out.rejected_rewards
    return torch.stack(
        [
            (out.losses.detach() * weight).sum(),
            weight.sum(),
            (rc > rr).float().sum(),
            (rc - rr).sum(),
            rc.sum(),
            rr.sum(),
            lp.policy_chosen.detach().float().sum(),
            lp.policy_rejected.detach().float().sum(),
            torch.tensor(float(rc.numel()), device=rc.device),
        ]
    )


def summarize(sums: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Summed ``pair_stats`` -> loss (weighted mean over pairs), accuracy and per-pair means:
    margin, reward_chosen, reward_rejected, logp_chosen, logp_rejected."""
    s = dict(zip(STAT_NAMES, sums.tolist()))
    n, w = max(s.pop("pairs"), 1.0), max(s.pop("weight"), 1e-12)
    out = {"loss": s.pop("loss") / w, "accuracy": s.pop("correct") / n, **{k: v / n for k, v in s.items()}}
    return {prefix + k: v for k, v in out.items()}
