"""PPO losses and diagnostics, per token, unreduced.

Policy: the clipped surrogate of Schulman et al. 2017 ("Proximal Policy Optimization Algorithms",
eq. 7), written as a loss to minimise. Value: the clipped value loss of the OpenAI baselines PPO2
code, also used by InstructGPT / lm-human-preferences (it is not in the PPO paper).

Every function returns per-token tensors and leaves reduction to the caller: the training loop
normalises by the global count of valid tokens so gradient accumulation is exact, which a per-call
mean over a micro-batch would break.
"""

from __future__ import annotations

import torch

from rlhf.losses.logprobs import CHUNK_ROWS


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate loss per token (Schulman et al. 2017, eq. 7, negated).

    With ratio = exp(logp - old_logp):

        loss = max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps_high))

    eps_high = eps is the paper's symmetric range. A wider upper range ("clip-higher", DAPO, Yu et
    al. 2025, sec. 3.1: eps = 0.2, eps_high = 0.28) lets tokens the policy found unlikely gain
    more probability in one update, which keeps entropy from collapsing.

    Given ``mask``, the ratio is the sequence's instead of the token's (GSPO, Zheng et al. 2025,
    eq. 7): the geometric mean of its tokens' ratios, exp(mean_t (logp - old_logp)), the same at
    every token of the sequence, so a sequence is clipped as a whole. Its gradient is the token
    log-probs' mean times that ratio. At ratio 1 (the first minibatch of an update) the gradient
    summed over a sequence's tokens equals the token-level one.

    Args:
        logp: log pi_theta of the sampled tokens under the current policy (carries the gradient).
        old_logp: log pi_theta_old of the same tokens at rollout time.
        advantages: A_t, treated as constants.
        clip_eps: eps of the clip range.
        clip_eps_high: eps of the upper side (None: clip_eps).
        mask: (B, T) valid response tokens, for sequence-level ratios; None: token-level.

    Shape: all inputs (B, T) -> loss (B, T), clipped (B, T).

    Returns (loss, clipped): loss unreduced; clipped is 1.0 where the clipped term is strictly
    greater than the unclipped one (the gradient there is zero), else 0.0, for the clipfrac metric.
    """
    log_ratio = logp - old_logp  # (B, T)
    if mask is not None:
        m = mask.to(log_ratio.dtype)
        seq = (log_ratio * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
        log_ratio = seq.expand_as(logp)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    high = clip_eps if clip_eps_high is None else clip_eps_high
    clipped_term = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high)
    loss = torch.maximum(unclipped, clipped_term)
    clipped = (clipped_term > unclipped).to(loss.dtype)
    return loss, clipped


LOSS_AGGREGATIONS = ("token", "sequence", "constant")


def aggregation_weights(
    mask: torch.Tensor, how: str, total_tokens: float, total_sequences: float, max_tokens: int
) -> torch.Tensor:
    """Per-token weights that reduce a per-token policy loss to one number: sum(loss * weights).

        token      mask / total_tokens                          every token of the batch counts
                                                                the same (DAPO, Yu et al. 2025, sec. 3.3)
        sequence   mask / (length_i * total_sequences)           each response's token mean, then
                                                                the mean over responses (GRPO,
                                                                Shao et al. 2024, eq. 3)
        constant   mask / (max_tokens * total_sequences)         a constant normaliser, so a token's
                                                                weight does not depend on its
                                                                response's length (Dr. GRPO, Liu et
                                                                al. 2025, sec. 3.1)

    "sequence" gives each token of a short response more weight than a token of a long one: a
    wrong answer is penalised less per token the longer it is, a bias towards long wrong answers
    that "token" and "constant" do not have.

    Args:
        mask: (B, T) 1 at valid response tokens of these rows (a micro-batch of the update).
        how: one of LOSS_AGGREGATIONS.
        total_tokens: valid tokens in the whole update (every micro-batch and process).
        total_sequences: responses in the whole update.
        max_tokens: the longest response allowed (rollout.max_new_tokens).

    Shape: mask (B, T) -> (B, T), in mask's dtype if floating, else float32. Summed over the whole
    update the weights are 1 for token and sequence, (mean length / max_tokens) for constant.

    Raises ValueError for an unknown ``how``.
    """
    m = mask if mask.is_floating_point() else mask.float()
    if how == "token":
        return m / max(total_tokens, 1)
    if how == "sequence":
        lengths = m.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
        return m / (lengths * max(total_sequences, 1))
    if how == "constant":
        return m / (max_tokens * max(total_sequences, 1))
    raise ValueError(f"unknown loss aggregation {how!r}; expected one of {', '.join(LOSS_AGGREGATIONS)}")


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss per token, as in OpenAI baselines PPO2 and InstructGPT.

        v_clip = old_v + clamp(v - old_v, -eps, eps)
        loss   = 0.5 * max((v - R)^2, (v_clip - R)^2)

    The max makes the clipping pessimistic: a value moved further than eps from its rollout
    estimate gets no gradient towards R. clip_eps <= 0 turns clipping off: 0.5 * (v - R)^2.

    Shape: values, old_values, returns (B, T) -> loss (B, T), clipped (B, T).

    Returns (loss, clipped): loss unreduced; clipped is 1.0 where the clipped error is strictly
    larger than the unclipped one, else 0.0 (all zeros when clipping is off).
    """
    unclipped = (values - returns) ** 2
    if clip_eps <= 0:
        return 0.5 * unclipped, torch.zeros_like(unclipped)
    v_clip = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
    clipped_err = (v_clip - returns) ** 2
    loss = 0.5 * torch.maximum(unclipped, clipped_err)
    return loss, (clipped_err > unclipped).to(loss.dtype)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last dimension, in float32.

        H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v

    The logsumexp form never takes log of a probability that underflowed to 0, so very peaked
    (or -inf masked) logits stay finite; float32 because bf16 sums over a large V are too coarse.

    Shape: logits (B, T, V) -> (B, T).

    Returns the per-position entropy in nats.
    """
    if not logits.requires_grad and logits.dim() > 1:
        # a statistic only: CHUNK_ROWS positions at a time, each by the same ops (the same bits),
        # its float32 copies kept in cache instead of a (B, T, V) float32 tensor each
        flat = logits.reshape(-1, logits.shape[-1])
        out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
        for i in range(0, flat.shape[0], CHUNK_ROWS):
            out[i : i + CHUNK_ROWS] = _entropy(flat[i : i + CHUNK_ROWS])
        return out.view(logits.shape[:-1])
    return _entropy(logits)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """entropy_from_logits' formula, on the whole tensor."""
    z = logits.float()
    p = torch.softmax(z, dim=-1)
    # where p == 0 and z == -inf the product is nan; those terms contribute 0 to the entropy
    pz = torch.where(p > 0, p * z, torch.zeros_like(z))
    return torch.logsumexp(z, dim=-1) - pz.sum(dim=-1)


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(old || new), the PPO early-stopping diagnostic.

    Schulman 2020, "Approximating KL divergence": with r = logp - old_logp, the log of the
    importance ratio new / old at tokens sampled from old,

        k3 = (exp(r) - 1) - r    >= 0, unbiased for KL(old || new).

    Shape: logp, old_logp (B, T) -> (B, T).

    Returns the unreduced estimate; the caller takes the masked mean.
    """
    log_ratio = logp - old_logp
    return torch.expm1(log_ratio) - log_ratio
