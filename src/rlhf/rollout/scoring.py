"""Score (prompt, response) token sequences with a reward model."""

from __future__ import annotations

import torch

from rlhf.data.collators import pad


@torch.no_grad()
def score_sequences(
    reward_model, prompts: list[list[int]], responses: list[list[int]], pad_id: int, batch_size: int = 64
) -> torch.Tensor:
    """The reward model's scalar for each prompt + response, read at its last token.  Shape: (N,)"""
    was_training = reward_model.training
    reward_model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        seqs = [
            a + b for a, b in zip(prompts[start : start + batch_size], responses[start : start + batch_size])
        ]
        ids = pad(seqs, pad_id).to(reward_model.device)
        mask = pad([[1] * len(s) for s in seqs], 0).to(reward_model.device)
        out.append(reward_model(input_ids=ids, attention_mask=mask, use_cache=False).logits.squeeze(-1).float().cpu())
    reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
