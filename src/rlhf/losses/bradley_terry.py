"""Bradley-Terry reward-model loss over groups of comparisons.

For a comparison where response w is preferred to l (Bradley & Terry 1952; InstructGPT, Ouyang
et al. 2022, eq. 1):

    loss(w, l) = -log sigmoid(r_w - r_l - m)

with an optional margin m (Llama 2, Touvron et al. 2023, eq. 2) asking for a larger gap when
raters were more certain. InstructGPT puts the C(K,2) comparisons of one prompt in one batch
element and scales them by 1/C(K,2), so each ranking weighs the same and its responses are
scored once; here each group's loss is the mean over its comparisons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_losses(
    rewards: torch.Tensor,
    better: torch.Tensor,
    worse: torch.Tensor,
    pair_group: torch.Tensor,
    n_groups: int,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean Bradley-Terry loss of each group's comparisons.

    Shape: rewards (N,) one scalar per response; better, worse, pair_group (P,) indices;
    margin (P,) or None -> (G,) with G = n_groups.
    """
    diff = rewards[better] - rewards[worse]  # (P,)
    if margin is not None:
        diff = diff - margin
    per_pair = -F.logsigmoid(diff.float())  # (P,)
    total = torch.zeros(n_groups, dtype=per_pair.dtype, device=per_pair.device).index_add(
        0, pair_group, per_pair
    )
    count = torch.zeros(n_groups, dtype=per_pair.dtype, device=per_pair.device).index_add(
        0, pair_group, torch.ones_like(per_pair)
    )
    return total / count.clamp(min=1)


def pairwise_accuracy(rewards: torch.Tensor, better: torch.Tensor, worse: torch.Tensor) -> torch.Tensor:
    """Share of comparisons where the preferred response scored higher (ties count half).  Shape: ()"""
    diff = rewards[better] - rewards[worse]
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean()
