"""Log-probabilities of given responses under a causal LM."""

from __future__ import annotations

import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import IGNORE
from rlhf.losses.logprobs import next_token_logprobs


@torch.no_grad()
def sequence_logprobs(
    model, prompts: list[list[int]], responses: list[list[int]], pad_id: int, batch_size: int = 32
) -> torch.Tensor:
    """Sum of log p(response | prompt) for each (prompt ids, response ids).  Shape: (N,)"""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        p, r = prompts[start : start + batch_size], responses[start : start + batch_size]
        ids = pad([a + b for a, b in zip(p, r)], pad_id)
        mask = pad([[1] * (len(a) + len(b)) for a, b in zip(p, r)], 0)
        labels = pad([[IGNORE] * len(a) + b for a, b in zip(p, r)], IGNORE)
        logits = model(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False
        ).logits
        out.append(next_token_logprobs(logits, labels.to(model.device)).sum(-1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
