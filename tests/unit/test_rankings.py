"""rlhf.data.rankings: a ranking of K responses -> C(K,2) comparisons, ties skipped and counted."""

from __future__ import annotations

import itertools
import random

import pytest

from rlhf.data.rankings import PreferenceGroup, ranking_comparisons, to_group, to_pairs
from rlhf.data.records import Pair, Ranking


@pytest.mark.parametrize(
    "ranks, pairs, ties",
    [
        # K = 2
        ([1, 2], [(0, 1)], 0),
        ([2, 1], [(1, 0)], 0),
        ([1, 1], [], 1),
        # K = 3
        ([2, 1, 3], [(0, 2), (1, 0), (1, 2)], 0),
        ([3, 2, 1], [(1, 0), (2, 0), (2, 1)], 0),
        ([1, 1, 2], [(0, 2), (1, 2)], 1),
        ([2, 2, 2], [], 3),
        # K = 4
        ([1, 2, 3, 4], [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], 0),
        ([4, 1, 3, 2], [(1, 0), (1, 2), (1, 3), (2, 0), (3, 0), (3, 2)], 0),
        ([1, 2, 2, 1], [(0, 1), (0, 2), (3, 1), (3, 2)], 2),
        # ranks need not be consecutive: only their order matters
        ([10, 3, 7, 3], [(1, 0), (1, 2), (2, 0), (3, 0), (3, 2)], 1),
    ],
)
def test_ranking_comparisons_by_hand(ranks, pairs, ties):
    assert ranking_comparisons(ranks) == (pairs, ties)


@pytest.mark.parametrize("k", range(2, 10))
def test_a_ranking_without_ties_gives_k_choose_2_comparisons(k):
    ranks = list(range(1, k + 1))
    random.Random(k).shuffle(ranks)
    pairs, ties = ranking_comparisons(ranks)
    assert ties == 0
    assert len(pairs) == k * (k - 1) // 2
    # each unordered pair appears once, oriented better -> worse
    assert sorted(tuple(sorted(p)) for p in pairs) == list(itertools.combinations(range(k), 2))
    assert all(ranks[b] < ranks[w] for b, w in pairs)
    assert pairs == sorted(pairs)


def test_pairs_plus_ties_is_k_choose_2_with_ties():
    ranks = [1, 2, 2, 3, 3, 3]
    pairs, ties = ranking_comparisons(ranks)
    assert ties == 1 + 3  # one tied pair among the 2s, three among the 3s
    assert len(pairs) + ties == 15


def test_to_group_on_a_ranking():
    rec = Ranking("p", ["a", "b", "c"], [2, 1, 2], annotator="x", weight=0.5)
    assert to_group(rec) == PreferenceGroup(
        prompt="p",
        responses=["a", "b", "c"],
        better=[1, 1],
        worse=[0, 2],
        margins=[0.0, 0.0],
        weight=0.5,
        n_ties=1,
    )


def test_to_group_on_a_pair_keeps_margin_and_weight():
    chat = [{"role": "user", "content": "q"}]
    assert to_group(Pair(chat, "good", "bad", margin=2.5, weight=3.0)) == PreferenceGroup(
        prompt=chat,
        responses=["good", "bad"],
        better=[0],
        worse=[1],
        margins=[2.5],
        weight=3.0,
        n_ties=0,
    )


def test_to_pairs():
    rec = Ranking("p", ["r0", "r1", "r2"], [2, 1, 3], weight=0.25)
    assert to_pairs(rec) == [
        Pair("p", "r0", "r2", 0.0, 0.25),
        Pair("p", "r1", "r0", 0.0, 0.25),
        Pair("p", "r1", "r2", 0.0, 0.25),
    ]
    assert to_pairs(Ranking("p", ["a", "b"], [1, 1])) == []
