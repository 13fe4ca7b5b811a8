"""The LM head on the last positions only (transformers' ``logits_to_keep``), as an index.

Given an int k, transformers slices the hidden states ``h[:, -k:]``: a strided view when there
is more than one row, and ``lm_head`` on a strided 3D input runs as a batched matmul against a
copy of the whole (V, d) head expanded per row (on SmolLM2, a 49k-token vocabulary, that copy
and the batched matmul were about a third of a DPO step). An index tensor selects the same
positions into a contiguous tensor, and the head is one plain matmul.
"""

from __future__ import annotations

import torch


def last_positions(length: int, keep: int, device: torch.device | str) -> torch.Tensor:
    """``logits_to_keep`` for the last ``keep`` of ``length`` positions.  Shape: (keep,)"""
    if not 0 < keep <= length:
        raise ValueError(f"keep must be in [1, {length}], got {keep}")
    return torch.arange(length - keep, length, device=device)
