"""Lists of tokenized examples -> padded tensors.

Training batches are right-padded (positions start at 0 for every row, and a sequence
classifier finds the last non-pad token). Labels are IGNORE (rlhf.data.tokenize) wherever no loss is taken.
"""

from __future__ import annotations

import math

import torch

from rlhf.data.tokenize import IGNORE


def pad(seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    """Pad integer sequences to the longest one, on the right (or the left, for generation).

    Shape: (B, T)
    """
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if left:
            out[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        else:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate_sft(examples: list[dict[str, list]], pad_id: int) -> dict[str, torch.Tensor]:
    """``{"input_ids", "labels"}`` examples -> input_ids, attention_mask, labels, each (B, T); and
    kl_weights (B, T) float, 1 where an example has none, when any example has ``"kl_weights"``."""
    ids = [e["input_ids"] for e in examples]
    input_ids = pad(ids, pad_id)
    attention_mask = pad([[1] * len(s) for s in ids], 0)
    labels = pad([e["labels"] for e in examples], IGNORE)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if any("kl_weights" in e for e in examples):
        batch["kl_weights"] = torch.zeros(input_ids.shape)
        for i, e in enumerate(examples):
            batch["kl_weights"][i, : len(e["input_ids"])] = torch.tensor(kl_weights(e), dtype=torch.float)
    return batch


def kl_weights(example: dict[str, list]) -> list[float]:
    """An example's per-token ``kl_weights`` (1 for every token when it has none)."""
    return example.get("kl_weights") or [1.0] * len(example["input_ids"])


def pack_examples(examples: list[dict[str, list]], max_length: int) -> list[dict[str, list]]:
    """Greedily concatenate whole examples, in order, into rows of at most ``max_length`` tokens.

    Examples are never split, so no prompt loses its response. Attention is not isolated between
    the examples of a row (as in most packing implementations): on the CPU/sdpa path a block mask
    would cost more than the padding it saves.
    """
    weighted = any("kl_weights" in e for e in examples)  # then every row carries them
    rows: list[dict[str, list]] = []
    row: list[dict[str, list]] = []
    width = 0
    for e in examples:
        if row and width + len(e["input_ids"]) > max_length:
            rows.append(_concat(row, weighted))
            row, width = [], 0
        row.append(e)
        width += len(e["input_ids"])
    if row:
        rows.append(_concat(row, weighted))
    return rows


def _concat(examples: list[dict[str, list]], weighted: bool) -> dict[str, list]:
    out = {key: [x for e in examples for x in e[key]] for key in ("input_ids", "labels")}
    if weighted:
        out["kl_weights"] = [w for e in examples for w in kl_weights(e)]
    return out


def collate_groups(groups: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Tokenized preference groups -> one flat batch of every response of every group.

    Each group is ``{"prompt_ids", "response_ids" (K lists), "better", "worse", "margins",
    "weight"}``. Returns input_ids/attention_mask (N, T) for the N responses, and for the P
    comparisons ``better``/``worse`` (P,) indices into the N rows, ``pair_group`` (P,) and
    ``margin`` (P,); ``group_weight`` (G,).
    """
    seqs, better, worse, pair_group, margin, weights = [], [], [], [], [], []
    for g, group in enumerate(groups):
        base = len(seqs)
        seqs += [group["prompt_ids"] + r for r in group["response_ids"]]
        better += [base + b for b in group["better"]]
        worse += [base + w for w in group["worse"]]
        pair_group += [g] * len(group["better"])
        margin += group["margins"]
        weights.append(group["weight"])
    return {
        "input_ids": pad(seqs, pad_id),
        "attention_mask": pad([[1] * len(s) for s in seqs], 0),
        "better": torch.tensor(better, dtype=torch.long),
        "worse": torch.tensor(worse, dtype=torch.long),
        "pair_group": torch.tensor(pair_group, dtype=torch.long),
        "margin": torch.tensor(margin, dtype=torch.float32),
        "group_weight": torch.tensor(weights, dtype=torch.float32),
    }


def padded_share(n_items: int, rank: int, world: int) -> tuple[list[int], int]:
    """This process's share of ``n_items`` items (every ``world``-th index), padded with index 0
    to as many items as the largest share; returns (indices, how many are real). Every process
    then runs as many forwards over its share (collective under FSDP2/ZeRO-3); the padding's
    results are dropped."""
    mine = list(range(rank, n_items, world))
    real = len(mine)
    return mine + [0] * (math.ceil(n_items / world) - real), real


def even_batches(items: list, rank: int, world: int, batch_size: int) -> list[tuple[list, bool]]:
    """This process's share of ``items`` (every ``world``-th one) in batches, padded with dummy
    batches (flag False: run the forward, count nothing) so that every process runs as many
    forwards. Under FSDP2/ZeRO-3 each forward is collective: a process with one batch fewer
    would leave the others waiting for it forever."""
    mine = items[rank::world]
    batches = [(mine[i : i + batch_size], True) for i in range(0, len(mine), batch_size)]
    most = math.ceil(math.ceil(len(items) / world) / batch_size)
    while len(batches) < most:
        batches.append((items[:1], False))
    return batches
