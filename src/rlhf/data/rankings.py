"""Rankings of K responses -> the comparisons a reward model learns from.

A ranking of K responses gives C(K,2) ordered comparisons (InstructGPT, Ouyang et al. 2022,
sec. 3.5). Ties (equal ranks) say neither response is better: Bradley-Terry has no term for a
tie, so tied pairs produce no comparison and are counted (``n_ties``). A prompt's comparisons
stay together in one ``PreferenceGroup`` so the reward model scores each response once and the
loss averages over the group's comparisons (the 1/C(K,2) normalisation), giving every ranking
the same weight however many comparisons it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlhf.data.records import Pair, Prompt, Ranking


@dataclass
class PreferenceGroup:
    prompt: Prompt
    responses: list[str]
    better: list[int]
    """index into responses of the preferred side of each comparison"""
    worse: list[int]
    margins: list[float] = field(default_factory=list)
    weight: float = 1.0
    n_ties: int = 0


def ranking_comparisons(ranks: list[int]) -> tuple[list[tuple[int, int]], int]:
    """All (better, worse) index pairs of a ranking (1 = best) and the number of tied pairs.

    >>> ranking_comparisons([2, 1, 3])
    ([(0, 2), (1, 0), (1, 2)], 0)
    """
    pairs, ties = [], 0
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            if ranks[i] < ranks[j]:
                pairs.append((i, j))
            elif ranks[j] < ranks[i]:
                pairs.append((j, i))
            else:
                ties += 1
    # stable order: by better index, then worse index, for reproducible batches
    pairs.sort()
    return pairs, ties


def to_group(record: Ranking | Pair) -> PreferenceGroup:
    if isinstance(record, Pair):
        return PreferenceGroup(
            record.prompt, [record.chosen, record.rejected], [0], [1], [record.margin], record.weight
        )
    pairs, ties = ranking_comparisons(record.ranks)
    return PreferenceGroup(
        record.prompt,
        record.responses,
        [b for b, _ in pairs],
        [w for _, w in pairs],
        [0.0] * len(pairs),
        record.weight,
        ties,
    )


def to_pairs(record: Ranking) -> list[Pair]:
    """A ranking as separate pairs (for losses that take pairs, such as DPO)."""
    group = to_group(record)
    return [
        Pair(record.prompt, record.responses[b], record.responses[w], 0.0, record.weight)
        for b, w in zip(group.better, group.worse)
    ]
