"""Evaluation metrics against hand-computed values."""

import itertools
import math
import random

import pytest

from rlhf.eval.metrics import (
    WinRate,
    best_of_k,
    best_of_k_curve,
    best_of_k_sizes,
    best_of_n_kl,
    distinct_n,
    kl_from_logprobs,
    kl_summary,
    ordering_accuracy,
    ordering_accuracy_by_group,
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


def test_best_of_n_kl_formula():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(0.693147 - 0.5, abs=1e-6)
    assert best_of_n_kl(16) == pytest.approx(2.772589 - 0.9375, abs=1e-6)


def test_kl_summary_mean_standard_error_and_count():
    # log-ratios 2, -1, 2: mean 1, sample variance (1 + 4 + 1) / 2 = 3, standard error sqrt(3 / 3)
    out = kl_summary([(-1.0, -3.0), (-2.0, -1.0), (0.0, -2.0)])
    assert out == {"kl": pytest.approx(1.0), "kl_stderr": pytest.approx(1.0), "kl_responses": 3}
    assert kl_summary([(-1.0, -1.5)]) == {"kl": 0.5, "kl_stderr": 0.0, "kl_responses": 1}


def test_ordering_accuracy_by_group_leaves_out_a_group_of_gold_ties():
    predicted = [[2.0, 1.0], [1.0, 2.0], [0.0, 1.0], [5.0, 5.0]]
    gold = [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]  # right, wrong, gold tie, predicted tie
    overall, by_group = ordering_accuracy_by_group(predicted, gold, ["b", "a", "c", "b"])
    assert overall == pytest.approx((1 + 0 + 0.5) / 3)
    assert by_group == {"b": 0.75, "a": 0.0}  # in order of first appearance; "c" has no pair
    assert list(by_group) == ["b", "a"]


def test_best_of_k_curve_from_one_set_of_samples():
    scores, gold = [[0.0, 2.0], [3.0, 1.0]], [[1.0, 0.0], [0.5, 1.0]]
    curve = best_of_k_curve(scores, {"gold": gold})
    # k = 1: every sample's mean; k = 2: the scorer's favourite of each prompt (gold 0 and 0.5)
    assert curve == [
        {"n": 1, "kl": 0.0, "score": 1.5, "gold": 0.625},
        {"n": 2, "kl": pytest.approx(math.log(2) - 0.5), "score": 2.5, "gold": 0.25},
    ]
