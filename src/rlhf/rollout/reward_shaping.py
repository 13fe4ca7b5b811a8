"""Reward shaping: from reward-model scores to the per-token rewards PPO optimises.

1. postprocess_scores: normalise the sequence scores, penalise responses that never ended, clip.
2. shape_rewards: the KL-penalised per-token reward of Ziegler et al. 2019 (sec. 2.2) and
   InstructGPT (Ouyang et al. 2022, eq. 2),

       r_t = -beta * KL_t                  on every response token,
       r_T = r_T + score                   on the last one,

   so the return of the whole response is score - beta * KL(pi || ref) estimated on the sample.
"""

from __future__ import annotations

import torch

from rlhf.losses.kl import kl_penalty


def postprocess_scores(
    scores: torch.Tensor,
    finished: torch.Tensor,
    mean: float | None = None,
    std: float | None = None,
    clip: float | None = None,
    missing_eos_penalty: float | None = None,
) -> torch.Tensor:
    """Normalise, penalise unfinished responses, then clip reward-model scores, in that order.

    1. (s - mean) / std when given: the reward model's offset is arbitrary (Bradley-Terry only
       fixes differences), so a known mean/std from a reference set makes beta comparable.
    2. s - missing_eos_penalty where finished is False: responses cut off at max_new_tokens
       (no EOS) are penalised, as TRL and OpenRLHF do, so the policy learns to stop.
    3. clamp to [-clip, clip] when clip > 0, bounding outliers the reward model was not trained on.

    Shape: scores (N,) float, finished (N,) bool -> (N,), a new tensor.

    Raises ValueError if std <= 0.
    """
    if std is not None and std <= 0:
        raise ValueError(f"reward normalisation std must be > 0, got {std}")
    out = scores.clone()
    if mean is not None:
        out = out - mean
    if std is not None:
        out = out / std
    if missing_eos_penalty is not None:
        out = torch.where(finished.bool(), out, out - missing_eos_penalty)
    if clip is not None and clip > 0:
        out = out.clamp(-clip, clip)
    return out


def shape_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    kl_estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token KL-penalised rewards (Ziegler et al. 2019, sec. 2.2; InstructGPT eq. 2).

        kl_t = kl_penalty(logp_t, ref_logp_t, kl_estimator)
        r_t  = -kl_coef * kl_t + [t is the row's last valid token] * score

    Args:
        scores: one sequence score per row (after postprocess_scores).
        logp: log pi of the sampled response tokens at rollout time.
        ref_logp: log ref of the same tokens.
        mask: 1 on valid response tokens (right-padded).
        kl_coef: beta, e.g. the current value of a KL controller.
        kl_estimator: a name in rlhf.losses.kl.KL_ESTIMATORS.

    Shape: scores (B,), logp, ref_logp, mask (B, T) -> rewards (B, T), kl (B, T).

    Returns (rewards, kl), both 0 where mask is 0; kl is unscaled, for logging.

    Raises ValueError if a row has no valid token: an empty response has nowhere to put its score.
    """
    valid = mask.bool()
    lengths = valid.sum(dim=1)  # (B,)
    if (lengths == 0).any():
        empty = (lengths == 0).nonzero().flatten().tolist()
        raise ValueError(f"rows {empty} have an all-zero response mask; each response needs >= 1 token")
    kl = kl_penalty(logp, ref_logp, kl_estimator)
    kl = torch.where(valid, kl, torch.zeros_like(kl))
    rewards = -kl_coef * kl
    # last valid index = argmax of the position among valid tokens, correct for any row length
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    last = (valid * positions).argmax(dim=1, keepdim=True)  # (B, 1)
    rewards = rewards.scatter_add(1, last, scores.to(rewards.dtype).unsqueeze(1))
    return rewards, kl
