"""Log-probabilities of chosen tokens under a model's logits: the one home of that formula, for the
RL rollouts and updates, the DPO family, SFT, the rollout engines' records, evaluation and the AI
judge. Logits are read in at least float32 (bf16 is widened, float64 stays float64).

Two forms of log p(token), equal up to float rounding (about 1e-6), are kept side by side:

- ``gathered_logprobs`` / ``token_logprobs``: logit[token] - logsumexp(logits). No (..., V)
  log-softmax is kept for the backward pass: the training forwards (PPO update, DPO family) use it.
- ``softmax_logprobs`` / ``next_token_logprobs``: log_softmax(logits)[token]. The no-grad scorers
  (the reference engine's record of each sampled token, evaluation's reference log-probs, the
  judge) have always used it; ``masked_nll`` is its fused negative (``F.cross_entropy`` gives the
  same value bit for bit, and SFT's gradient is that kernel's). Moving them to the first form would
  change every evaluation figure in its last digits, so both stay, pinned to each other by tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf.data.tokenize import IGNORE


def at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or wider if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def gathered_logprobs(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log softmax(logits) at the ``S`` token ids each position lists in ``index`` (ids >= 0).

    Shape: logits (..., V), index (..., S) -> (..., S)
    """
    return _GatheredLogprobs.apply(logits, index)


CHUNK_ROWS = 16
"""positions a (..., V) pass widens at once: 16 x 49k float32 values (3 MB) stay in cache, where
the whole (B, R, V) float32 tensor would go through memory (and fresh pages) at every op"""


class _GatheredLogprobs(torch.autograd.Function):
    """logit[index] - logsumexp(logits) with its gradient written in one (..., V) buffer.

    Autograd's own backward of that expression builds the softmax term and a scattered one-hot
    term as two widened (..., V) tensors, adds them and narrows the sum, and keeps the widened
    logits alive from the forward to the backward; over a 49k vocabulary that was about a tenth of
    a DPO step on SmolLM2. Here the forward keeps the logits as they came (bf16 stays bf16) and
    the backward computes the same expression in place: exp(x - lse) * -sum(g), then g added at
    the indices. Both passes go CHUNK_ROWS positions at a time, widening only those: each
    position's values are computed by the same ops as over the whole tensor, so chunking changes
    no bit (tests/unit/test_logprobs.py), and it was 3x faster over SmolLM2's 49k vocabulary.
    The values are autograd's bit for bit where each position's indices differ; a position
    listing a token twice adds its two g in another order (one rounding)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        flat, idx = logits.reshape(-1, logits.shape[-1]), index.reshape(-1, index.shape[-1])
        wide = torch.promote_types(logits.dtype, torch.float32)
        lse = torch.empty(flat.shape[0], 1, dtype=wide, device=logits.device)
        out = torch.empty(idx.shape, dtype=wide, device=logits.device)
        for i in range(0, flat.shape[0], CHUNK_ROWS):
            x = at_least_f32(flat[i : i + CHUNK_ROWS])
            chunk_lse = torch.logsumexp(x, dim=-1, keepdim=True)
            lse[i : i + CHUNK_ROWS] = chunk_lse
            out[i : i + CHUNK_ROWS] = x.gather(-1, idx[i : i + CHUNK_ROWS]) - chunk_lse
        ctx.save_for_backward(logits, index, lse)
        return out.view(index.shape)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, index, lse = ctx.saved_tensors
        flat, idx = logits.reshape(-1, logits.shape[-1]), index.reshape(-1, index.shape[-1])
        gf = g.reshape(-1, g.shape[-1])
        grad = torch.empty_like(flat)
        for i in range(0, flat.shape[0], CHUNK_ROWS):
            rows = slice(i, i + CHUNK_ROWS)
            part = at_least_f32(flat[rows]).sub(lse[rows]).exp_()  # a new buffer even in float32
            part.mul_(gf[rows].sum(-1, keepdim=True).neg()).scatter_add_(-1, idx[rows], gf[rows])
            grad[rows] = part  # narrowed to the logits' dtype
        return grad.view(logits.shape), None


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature) at ``tokens``, one a position (the sampling temperature:
    the distribution the tokens were drawn from).  Shape: logits (B, R, V), tokens (B, R) -> (B, R)"""
    if temperature != 1.0:
        logits = at_least_f32(logits) / temperature
    # at temperature 1 gathered_logprobs widens the logits itself, a chunk at a time
    return gathered_logprobs(logits, tokens.unsqueeze(-1)).squeeze(-1)


def softmax_logprobs(logits: torch.Tensor, index: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / temperature) read at ``index`` (ids >= 0): the no-grad scorers' form.

    Shape: logits (..., V), index (..., S) -> (..., S)
    """
    logits = at_least_f32(logits)
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, index)


def next_token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(label_t+1 | tokens <= t) at every position; 0 where the label is IGNORE.

    Shape: logits (B, T, V), labels (B, T) -> (B, T-1)
    """
    target = labels[:, 1:]  # (B, T-1): token t predicts label t+1
    logp = softmax_logprobs(logits[:, :-1], target.clamp(min=0).unsqueeze(-1), temperature).squeeze(-1)
    return logp * (target != IGNORE)


def masked_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL over labelled positions, and how many positions were labelled: the SFT
    loss (and PPO-ptx's), -next_token_logprobs summed, through torch's fused cross-entropy.

    Token t predicts label t+1; positions labelled IGNORE (prompt, padding) are skipped. Returning
    the sum and the count separately lets the caller divide by the token count of the whole
    global batch, so gradient accumulation and data parallelism give the same gradient as one
    big batch.

    Shape: logits (B, T, V), labels (B, T) -> (sum: (), count: ())
    """
    shift_logits = at_least_f32(logits[:, :-1])  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return nll, (shift_labels != IGNORE).sum()


def masked_kl_to_reference(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed KL(ref || pi) over the whole vocabulary at labelled positions, and how many positions
    were labelled: SFT's pull toward its starting model (``sft.kl_coef``). With ``weights`` (B, T),
    aligned with ``labels``, each position's KL counts ``weights`` times (a demonstration's
    ``kl_weight``; 0: that response is left to its NLL alone).

    At each position of a response, sum_v ref(v) (log ref(v) - log pi(v)), exact, not a sampled
    estimate; its gradient in the logits is pi - ref. Added to the NLL with weight beta, the
    target of every position becomes (one-hot(demonstration) + beta * ref) / (1 + beta): the
    demonstrations still pull, and where they say nothing the starting model's distribution holds.
    Positions are selected before the softmax, so the cost is that of the response tokens only.

    Shape: logits, ref_logits (B, T, V), labels (B, T) -> (sum: (), count: ())
    """
    mask = labels[:, 1:] != IGNORE  # token t predicts label t+1
    logp = torch.log_softmax(at_least_f32(logits[:, :-1][mask]), dim=-1)  # (N, V)
    ref_logp = torch.log_softmax(at_least_f32(ref_logits[:, :-1][mask]), dim=-1)
    if weights is None:
        return F.kl_div(logp, ref_logp, reduction="sum", log_target=True), mask.sum()
    per_position = F.kl_div(logp, ref_logp, reduction="none", log_target=True).sum(-1)  # (N,)
    return (per_position * weights[:, 1:][mask].to(per_position.dtype)).sum(), mask.sum()
