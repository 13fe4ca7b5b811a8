"""Metrics over scored responses; plain numbers in, plain numbers out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def outcome(score: float, baseline: float) -> float:
    """One prompt's result against the baseline: 1 win, 0.5 tie, 0 loss."""
    return 1.0 if score > baseline else 0.5 if score == baseline else 0.0


def win_rate(scores: Sequence[float], baseline: Sequence[float]) -> float:
    """Share of prompts where ``scores`` beats ``baseline`` (same prompt order); ties count half."""
    if len(scores) != len(baseline) or not scores:
        raise ValueError("win_rate needs two equally long, non-empty score lists")
    return sum(map(outcome, scores, baseline)) / len(scores)


@dataclass(frozen=True)
class WinRate:
    """A win rate with its counts and a 95% interval (normal approximation over prompts)."""

    rate: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int


def win_rate_interval(scores: Sequence[float], baseline: Sequence[float], z: float = 1.96) -> WinRate:
    """``win_rate`` with counts and ``rate -/+ z * standard error``, clipped to [0, 1].

    Each prompt's outcome is 1 (win), 0.5 (tie) or 0 (loss); the standard error is their sample
    standard deviation over sqrt(prompts). With 125 prompts and no ties it is about +/-0.09 at
    0.5: differences smaller than that are not evidence.
    """
    rate = win_rate(scores, baseline)
    outcomes = list(map(outcome, scores, baseline))
    n = len(outcomes)
    var = sum((x - rate) ** 2 for x in outcomes) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return WinRate(
        rate=rate,
        low=max(0.0, rate - half),
        high=min(1.0, rate + half),
        wins=sum(x == 1.0 for x in outcomes),
        ties=sum(x == 0.5 for x in outcomes),
        losses=sum(x == 0.0 for x in outcomes),
    )


def kl_from_logprobs(policy_logps: Sequence[float], reference_logps: Sequence[float]) -> float:
    """KL(policy || reference) estimated from responses sampled from the policy.

    Each term is log pi(y|x) - log ref(y|x) for a whole response y ~ pi (the k1 estimator of
    Schulman's "Approximating KL divergence", summed over tokens): unbiased, but single terms can
    be negative.
    """
    if len(policy_logps) != len(reference_logps) or not policy_logps:
        raise ValueError("kl_from_logprobs needs two equally long, non-empty lists")
    return sum(p - r for p, r in zip(policy_logps, reference_logps)) / len(policy_logps)


def kl_summary(terms: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Mean KL (``kl_from_logprobs``), its standard error and the number of responses, from one
    (log pi(y|x), log ref(y|x)) pair per sampled response."""
    mean = kl_from_logprobs([p for p, _ in terms], [r for _, r in terms])
    diffs = [p - r for p, r in terms]
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) if len(diffs) > 1 else 0.0
    return {"kl": mean, "kl_stderr": math.sqrt(var / len(diffs)), "kl_responses": len(diffs)}


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.split()
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams over ``texts`` (Li et al. 2016); 0 if none."""
    grams = [g for t in texts for g in _ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_share(text: str, n: int = 2) -> float:
    """Share of a response's word n-grams that repeat an earlier one: (all - distinct) / all, 0 if
    it has none. "yes yes yes yes" -> 2/3; a model padding or looping its answers drives it up."""
    grams = _ngrams(text, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def repetition(texts: Sequence[str]) -> dict[str, float]:
    """The two signs of looping or formulaic answers, over a batch of responses: ``distinct_2``
    (distinct word bigrams over all of them) and ``repeated_bigrams`` (the mean per response of
    ``repeated_ngram_share``)."""
    if not texts:
        raise ValueError("repetition needs at least one text")
    return {
        "distinct_2": distinct_n(texts, 2),
        "repeated_bigrams": sum(map(repeated_ngram_share, texts)) / len(texts),
    }


def ordering_accuracy(predicted: Sequence[Sequence[float]], gold: Sequence[Sequence[float]]) -> float:
    """Over every pair of responses to one prompt with different gold scores, the share that
    ``predicted`` orders the same way as ``gold`` (a predicted tie counts half)."""
    agree = total = 0.0
    for pred, ref in zip(predicted, gold):
        for i in range(len(ref)):
            for j in range(i + 1, len(ref)):
                if ref[i] == ref[j]:
                    continue
                total += 1
                d = (pred[i] - pred[j]) * (ref[i] - ref[j])
                agree += 1.0 if d > 0 else 0.5 if pred[i] == pred[j] else 0.0
    return agree / total if total else float("nan")


def ordering_accuracy_by_group(
    predicted: Sequence[Sequence[float]], gold: Sequence[Sequence[float]], groups: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """``ordering_accuracy`` over every prompt, and over each group's prompts alone ({group:
    accuracy}, groups in order of first appearance; a group whose responses all tie on gold has
    none). ``groups``: each prompt's group (a task family)."""
    by_group = {}
    for group in dict.fromkeys(groups):
        rows = [i for i, g in enumerate(groups) if g == group]
        acc = ordering_accuracy([predicted[i] for i in rows], [gold[i] for i in rows])
        if acc == acc:  # NaN: no pair with different gold scores
            by_group[group] = acc
    return ordering_accuracy(predicted, gold), by_group


def best_of_k(proxy: Sequence[float], values: Sequence[float], k: int) -> float:
    """Expected ``values`` of the proxy's favourite among k of these n samples, drawn without
    replacement, averaged over all C(n, k) subsets; ties go to the earlier sample, as ``max`` does.

    One set of n samples gives the whole best-of-k curve for k <= n without resampling (the
    estimator of Nakano et al. 2021 and Gao et al. 2022): ranked by proxy from the bottom, the
    sample at rank i (1-based) is the favourite of C(i - 1, k - 1) of the C(n, k) subsets.
    """
    n = len(proxy)
    if len(values) != n:
        raise ValueError(f"best_of_k got {n} proxy scores but {len(values)} values")
    if not 1 <= k <= n:
        raise ValueError(f"best_of_k needs 1 <= k <= n, got k={k}, n={n}")
    order = sorted(range(n), key=lambda j: (proxy[j], -j))  # ascending; of equals, the earlier ranks higher
    total = math.comb(n, k)
    return sum(math.comb(i, k - 1) / total * values[j] for i, j in enumerate(order))


def mean_best_of_k(proxy: Sequence[Sequence[float]], values: Sequence[Sequence[float]], k: int) -> float:
    """``best_of_k`` averaged over prompts (one row of n samples each)."""
    return sum(best_of_k(p, v, k) for p, v in zip(proxy, values)) / len(proxy)


def best_of_k_sizes(n: int) -> list[int]:
    """The k of a best-of-k curve up to n: powers of two, and n itself."""
    return sorted({2**e for e in range(n.bit_length()) if 2**e <= n} | {n})


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || sampling policy) = log n - (n - 1) / n, in nats (Stiennon et al. 2020,
    appendix G.3; an upper bound that is exact when the n samples are distinct)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_k_curve(
    scores: Sequence[Sequence[float]], values: dict[str, Sequence[Sequence[float]]]
) -> list[dict[str, float]]:
    """Best-of-k for k = 1, 2, 4, ... n from the same n samples per prompt (``best_of_k``): its KL
    to the sampling policy, the mean score of the scorer's favourite, and that favourite's mean of
    each of ``values`` (e.g. "gold": a gold score per sample). Gold rising with k and then falling
    while the score keeps rising is over-optimisation of the scorer (Gao et al. 2022)."""
    return [
        {"n": k, "kl": best_of_n_kl(k), "score": mean_best_of_k(scores, scores, k)}
        | {name: mean_best_of_k(scores, v, k) for name, v in values.items()}
        for k in best_of_k_sizes(len(scores[0]))
    ]
