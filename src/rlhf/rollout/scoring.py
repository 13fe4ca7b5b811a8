"""Score (prompt, response) token sequences with a reward model."""

from __future__ import annotations

import torch

from rlhf.data.collators import pad
from rlhf.models import shared_prompt
from rlhf.rollout.experience import TokenValueModel
from rlhf.rollout.groups import pack_groups, packing_saves


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
        out.append(
            reward_model(input_ids=ids, attention_mask=mask, use_cache=False).logits.squeeze(-1).float().cpu()
        )
    reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def score_groups(
    reward_model,
    prompts: list[list[int]],
    responses: list[list[int]],
    n: int,
    pad_id: int,
    batch_size: int = 64,
) -> torch.Tensor:
    """As ``score_sequences``, for rows that come n to a prompt (rows g*n .. g*n+n-1 share one):
    each prompt is read once for its n responses (rollout/groups.py) when the reward model can
    take the 4D mask and that costs fewer FLOPs; otherwise row by row. Up to ``batch_size`` rows
    (whole groups) a forward.  Shape: (N,)"""
    base = shared_prompt.base_model(reward_model)
    longest = max((len(p) for p in prompts), default=0) + n * max((len(r) for r in responses), default=0)
    try:
        per_token = TokenValueModel(reward_model)
    except ValueError:  # no body + linear score head to run per position
        per_token = None
    if (
        n < 2
        or per_token is None
        or shared_prompt.unsupported(reward_model, longest)
        or not getattr(base.config, "hidden_size", None)
        or not packing_saves(prompts, responses, n, base.config.hidden_size)
    ):
        return score_sequences(reward_model, prompts, responses, pad_id, batch_size)
    size = max(n, batch_size // n * n)
    was_training = reward_model.training
    reward_model.eval()
    out = []
    for start in range(0, len(prompts), size):
        sl = slice(start, start + size)
        g = pack_groups(prompts[sl], responses[sl], n, pad_id, base.config.pad_token_id)
        if g is None:  # these rows do not share their prompts n by n
            out.append(score_sequences(reward_model, prompts[sl], responses[sl], pad_id, batch_size))
            continue
        g = g.to(base.device)
        values = per_token(g.input_ids, g.attention_mask(reward_model), g.position_ids)  # (G, T)
        out.append(values[g.group, g.last].float().cpu())
    reward_model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
