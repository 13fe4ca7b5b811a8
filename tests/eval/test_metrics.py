"""Evaluation metrics against hand-computed values."""

import itertools
import math
import random

import pytest

from rlhf.eval.metrics import (
    WinRate,
    best_of_k,
    best_of_k_sizes,
    distinct_n,
    kl_from_logprobs,
    ordering_accuracy,
    repeated_ngram_share,
    repetition,
    win_rate,
    win_rate_interval,
)


def test_win_rate_counts_ties_half():
    # wins, loss, tie, win -> (1 + 0 + 0.5 + 1) / 4
    assert win_rate([2.0, 0.0, 1.0, 5.0], [1.0, 1.0, 1.0, 4.0]) == 0.625


def test_win_rate_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        win_rate([1.0], [1.0, 2.0])


def test_kl_is_the_mean_log_ratio():
    assert kl_from_logprobs([-1.0, -2.0], [-3.0, -1.0]) == pytest.approx(((-1 + 3) + (-2 + 1)) / 2)


def test_distinct_n():
    # bigrams: (a b) (b a) (a b) -> 2 distinct of 3
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a"], 2) == 0.0


def test_ordering_accuracy_skips_gold_ties_and_halves_predicted_ties():
    gold = [[1.0, 0.0, 0.0]]  # pairs (0,1), (0,2) count; (1,2) is a gold tie
    assert ordering_accuracy([[2.0, 1.0, 3.0]], gold) == 0.5  # right on (0,1), wrong on (0,2)
    assert ordering_accuracy([[1.0, 1.0, 0.0]], gold) == 0.75  # tie on (0,1) = 0.5, right on (0,2)
    assert math.isnan(ordering_accuracy([[1.0, 2.0]], [[0.0, 0.0]]))


def test_repeated_ngram_share():
    assert repeated_ngram_share("yes yes yes yes") == pytest.approx(2 / 3)  # 3 bigrams, 1 distinct
    assert repeated_ngram_share("the answer is 8 I hope this helps I hope this helps") == pytest.approx(
        3 / 11
    )
    assert repeated_ngram_share("all different words here") == 0.0
    assert repeated_ngram_share("one") == 0.0 and repeated_ngram_share("") == 0.0
    assert repeated_ngram_share("a b c a b c", n=3) == pytest.approx(1 / 4)


def test_win_rate_interval_from_hand_derived_numbers():
    # outcomes 1, 0.5, 0, 0.5: rate 0.5; sample variance (0.25 + 0 + 0.25 + 0) / 3 = 1/6;
    # standard error sqrt(1/6 / 4) = 0.2041; 1.96 x that = 0.4001
    w = win_rate_interval([2.0, 1.0, 1.0, 0.0], [1.0, 1.0, 2.0, 0.0])
    assert (w.rate, w.wins, w.ties, w.losses) == (0.5, 1, 2, 1)
    assert w.low == pytest.approx(0.5 - 1.96 * math.sqrt(1 / 24))
    assert w.high == pytest.approx(0.5 + 1.96 * math.sqrt(1 / 24))
    # all wins: no spread, and the interval is clipped to [0, 1]
    assert win_rate_interval([1.0, 1.0], [0.0, 0.0]) == WinRate(1.0, 1.0, 1.0, 2, 0, 0)
    w = win_rate_interval([1.0, 0.0, 1.0], [0.0, 1.0, 0.0], z=10.0)
    assert (w.low, w.high) == (0.0, 1.0)
    with pytest.raises(ValueError):
        win_rate_interval([], [])


def test_repetition_is_distinct_2_and_the_mean_repeated_bigram_share():
    # "a b a b": bigrams ab, ba, ab -> 1/3 repeated; "c d": cd -> 0; distinct over both: ab, ba, cd of 4
    assert repetition(["a b a b", "c d"]) == pytest.approx(
        {"distinct_2": 3 / 4, "repeated_bigrams": (1 / 3 + 0) / 2}
    )
    with pytest.raises(ValueError):
        repetition([])


@pytest.mark.parametrize("seed", range(6))
def test_best_of_k_equals_the_mean_over_every_subset(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 7)
    proxy = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(n)]  # ties included
    values = [rng.random() for _ in range(n)]
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = sum(values[max(s, key=proxy.__getitem__)] for s in subsets) / len(subsets)
        assert best_of_k(proxy, values, k) == pytest.approx(brute, abs=1e-12)


def test_best_of_k_ends():
    proxy, values = [3.0, 1.0, 2.0], [10.0, 20.0, 30.0]
    assert best_of_k(proxy, values, 1) == pytest.approx(20.0)  # a random sample: the mean
    assert best_of_k(proxy, values, 3) == 10.0  # all of them: the proxy's favourite
    assert best_of_k(proxy, values, 2) == pytest.approx((10 + 10 + 30) / 3)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        best_of_k(proxy, values, 4)
    assert best_of_k_sizes(16) == [1, 2, 4, 8, 16]
    assert best_of_k_sizes(12) == [1, 2, 4, 8, 12]
    assert best_of_k_sizes(1) == [1]
