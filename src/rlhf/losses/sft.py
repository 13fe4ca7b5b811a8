"""Supervised fine-tuning loss: next-token negative log-likelihood on response tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf.data.tokenize import IGNORE


def masked_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL over labelled positions, and how many positions were labelled.

    Token t predicts label t+1; positions labelled IGNORE (prompt, padding) are skipped. Returning
    the sum and the count separately lets the caller divide by the token count of the whole
    global batch, so gradient accumulation and data parallelism give the same gradient as one
    big batch.

    Shape: logits (B, T, V), labels (B, T) -> (sum: (), count: ())
    """
    shift_logits = logits[:, :-1].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return nll, (shift_labels != IGNORE).sum()
