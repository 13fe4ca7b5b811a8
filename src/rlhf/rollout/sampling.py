"""One sampling step: next-token logits -> chosen tokens and their log-probs.

The order of the logits processors follows Hugging Face ``generate`` (min-new-tokens EOS mask,
temperature, top-k, top-p), so the same seed-free decisions (greedy, top_k=1) agree with it. The
returned log-prob is taken *before* the EOS mask and the top-k / top-p truncation, under
softmax(logits / temperature): see ``rlhf.rollout.generate`` for why.
"""

from __future__ import annotations

import torch


def top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set to -inf every logit outside the top ``top_k`` and outside the smallest set of most
    likely tokens whose probability reaches ``top_p`` (Holtzman et al. 2020); the most likely
    token is always kept. Works in place on ``logits``.  Shape: (B, V) -> (B, V)
    """
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits.masked_fill_(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # mass strictly before each token: a token is dropped once top_p is already covered
        before = torch.cumsum(probs, dim=-1) - probs
        drop = before >= top_p
        drop[:, 0] = False
        logits.masked_fill_(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def inverse_cdf(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row from ``probs`` (non-negative, rows need not sum to 1) by inverting its CDF:
    one uniform number a row, where ``torch.multinomial`` draws an exponential per vocabulary entry
    (about 1 ms at 16 x 2048 on CPU, as much as a layer's matmuls). A zero-probability token is never
    returned: ``right=True`` picks the first index whose CDF exceeds the draw, and a zero adds nothing
    to the CDF.

    Shape: probs (B, V) -> (B,)
    """
    cdf = torch.cumsum(probs, dim=-1)  # (B, V)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # (B, 1)
    return idx.clamp_(max=probs.shape[-1] - 1).squeeze(-1)


def sample_step(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    mask_token: int | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the next token of every row.

    ``mask_token`` (EOS before ``min_new_tokens``) cannot be chosen; temperature 0 is greedy.
    Returns tokens (B,) and their log-probs (B,) under softmax(logits / temperature), or
    softmax(logits) when greedy.  Shape: logits (B, V), float32
    """
    scaled = logits / temperature if temperature > 0 and temperature != 1.0 else logits
    logp = torch.log_softmax(scaled, dim=-1)  # (B, V): the distribution the log-probs report
    if temperature <= 0:
        choice = logits.clone() if mask_token is not None else logits
        if mask_token is not None:
            choice[:, mask_token] = float("-inf")
        tokens = choice.argmax(dim=-1)
    elif top_k > 0 or top_p < 1.0:
        choice = scaled.clone()
        if mask_token is not None:
            choice[:, mask_token] = float("-inf")
        tokens = inverse_cdf(torch.softmax(top_k_top_p(choice, top_k, top_p), dim=-1), generator)
    else:  # plain sampling: the probabilities are exp(logp), the masked token's set to 0
        probs = logp.exp()
        if mask_token is not None:
            probs[:, mask_token] = 0.0
        tokens = inverse_cdf(probs, generator)
    return tokens, logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
