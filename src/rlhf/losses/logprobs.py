"""Log-probabilities of chosen tokens under a model's logits: the one formula the RL rollouts and
updates, the held-out evaluation during RL and the DPO family read.

log p(token) = logit[token] - logsumexp(logits): no (..., V) log-softmax is kept, and bf16 logits
are read in float32 (float64 stays float64, for exactness tests).
"""

from __future__ import annotations

import torch


def at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or wider if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def gathered_logprobs(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log softmax(logits) at the ``S`` token ids each position lists in ``index`` (ids >= 0).

    Shape: logits (..., V), index (..., S) -> (..., S)
    """
    logits = at_least_f32(logits)
    return logits.gather(-1, index) - torch.logsumexp(logits, dim=-1, keepdim=True)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature) at ``tokens``, one a position (the sampling temperature:
    the distribution the tokens were drawn from).  Shape: logits (B, R, V), tokens (B, R) -> (B, R)"""
    logits = at_least_f32(logits)
    if temperature != 1.0:
        logits = logits / temperature
    return gathered_logprobs(logits, tokens.unsqueeze(-1)).squeeze(-1)
