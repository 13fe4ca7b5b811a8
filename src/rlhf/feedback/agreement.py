"""Inter-rater agreement over rankings: pure functions of label tables.

A ranking of K responses implies C(K,2) **pair outcomes**: for responses i < j of a task, +1 if
the rater put i above j, -1 if below, 0 for a tie. A *unit* is one (task, i, j); the agreement
statistics below compare raters' outcomes on the same units.

- ``pairwise_agreement``: raw percent agreement, the share of (unit, rater pair) where the two
  raters gave the same outcome. Easy to read, but inflated by chance.
- ``krippendorff_alpha``: Krippendorff's alpha over pair outcomes (Krippendorff 2011, "Computing
  Krippendorff's Alpha-Reliability"), ordinal level (-1 < tie < +1), computed by the
  ``krippendorff`` package. 1 = perfect, 0 = chance level, < 0 = systematic disagreement; it
  handles any number of raters per unit and missing ratings. Which response of a pair is "i" is
  an accident of the import file (a file that lists the best response first makes nearly every
  outcome +1, and alpha's chance term then calls near-perfect agreement chance), so each unit
  enters in both orientations, (i, j) and (j, i) with outcomes negated: alpha then depends only on
  whether raters order each pair the same way.
- ``kendall_tau_b``: Kendall's tau-b between two raters' rankings of the same task
  (``scipy.stats.kendalltau``, variant b, which corrects for ties), averaged over shared tasks.
- ``leave_one_out``: for each rater, the share of units where their outcome equals the majority
  outcome of the *other* raters of that unit (units without a strict majority are left out). A
  rater far below the rest is careless, confused by the guidelines, or adversarial.
- ``majority_agreement``: for each rater, the share of units rated by at least 3 raters where
  their outcome equals the unit's strict majority outcome (their own vote included). With one
  careless or adversarial rater among three, the two good ones form the majority, so they score
  high on every unit, not on none: leave-one-out would compare each good rater with a split pair
  of others and count nothing for them. Units with only 2 raters say nothing about which of the
  two is wrong, so they are left out: with overlap 2, only gold tasks can flag a rater.
- ``gold_accuracy``: on gold tasks (known ranking), the share of the gold ranking's strict pairs
  the rater ordered the same way; a tie counts half, as in the reward model's pairwise accuracy.
- ``wilson_interval``: the Wilson score interval of a proportion (Wilson 1927; Brown, Cai and
  DasGupta 2001 recommend it over the normal interval for small n and proportions near 0 or 1).
  Comparisons from one ranking are not independent, so the interval is read with a minimum number
  of tasks, not alone.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

Unit = tuple[Hashable, int, int]  # (task, i, j) with i < j


class LabelRow(NamedTuple):
    task: Hashable
    rater: str
    ranks: Sequence[int]
    """in the task's response order; 1 = best, equal = tie"""


class Score(NamedTuple):
    value: float | None
    """None when there is nothing to compare"""
    n: int
    """comparisons the value rests on"""


def pair_outcomes(ranks: Sequence[int]) -> dict[tuple[int, int], int]:
    """{(i, j): +1 if i ranked above j, -1 if below, 0 if tied} for every i < j."""
    r = np.asarray(ranks)
    i, j = np.triu_indices(len(r), k=1)
    signs = np.sign(r[j] - r[i])  # a smaller rank is better
    return {(int(a), int(b)): int(s) for a, b, s in zip(i, j, signs)}


def outcome_table(rows: Iterable[LabelRow]) -> dict[Unit, dict[str, int]]:
    """{(task, i, j): {rater: outcome}} over every ranking."""
    table: dict[Unit, dict[str, int]] = defaultdict(dict)
    for row in rows:
        for (i, j), outcome in pair_outcomes(row.ranks).items():
            table[(row.task, i, j)][row.rater] = outcome
    return dict(table)


def pairwise_agreement(table: dict[Unit, dict[str, int]]) -> Score:
    """Share of (unit, pair of raters) with equal outcomes."""
    agree = total = 0
    for ratings in table.values():
        for a, b in itertools.combinations(ratings.values(), 2):
            agree += a == b
            total += 1
    return Score(agree / total if total else None, total)


def krippendorff_alpha(table: dict[Unit, dict[str, int]], level: str = "ordinal") -> Score:
    """Krippendorff's alpha over pair outcomes (raters x units, missing = nan)."""
    import krippendorff

    units = [u for u, ratings in table.items() if len(ratings) >= 2]  # others carry no information
    if not units:
        return Score(None, 0)
    raters = sorted({r for u in units for r in table[u]})
    index = {r: k for k, r in enumerate(raters)}
    data = np.full((len(raters), 2 * len(units)), np.nan)  # (raters, units in both orientations)
    for col, unit in enumerate(units):
        for rater, outcome in table[unit].items():
            data[index[rater], 2 * col] = outcome
            data[index[rater], 2 * col + 1] = -outcome
    if len(np.unique(data[~np.isnan(data)])) < 2:
        # every outcome a tie: observed and expected disagreement are both 0, alpha is undefined
        return Score(None, len(units))
    value = krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=[-1, 0, 1])
    return Score(None if math.isnan(value) else float(value), len(units))


def kendall_tau_b(rows: Iterable[LabelRow]) -> dict[tuple[str, str], Score]:
    """{(rater a, rater b): mean tau-b over the tasks both ranked} for a < b."""
    from scipy.stats import kendalltau

    by_task: dict[Hashable, dict[str, Sequence[int]]] = defaultdict(dict)
    for row in rows:
        by_task[row.task][row.rater] = row.ranks
    taus: dict[tuple[str, str], list[float]] = defaultdict(list)
    for rankings in by_task.values():
        for a, b in itertools.combinations(sorted(rankings), 2):
            tau = kendalltau(rankings[a], rankings[b], variant="b").statistic
            if not math.isnan(tau):  # an all-tied ranking has no order to correlate
                taus[(a, b)].append(float(tau))
    return {pair: Score(float(np.mean(v)), len(v)) for pair, v in taus.items()}


def mean_tau_by_rater(taus: dict[tuple[str, str], Score]) -> dict[str, Score]:
    """Each rater's tau-b with everyone else, averaged over shared tasks."""
    acc: dict[str, list[float]] = defaultdict(list)
    for (a, b), score in taus.items():
        acc[a] += [score.value] * score.n
        acc[b] += [score.value] * score.n
    return {r: Score(float(np.mean(v)), len(v)) for r, v in acc.items()}


def leave_one_out(table: dict[Unit, dict[str, int]]) -> dict[str, Score]:
    """Each rater's agreement with the majority of the other raters of the same units."""
    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for ratings in table.values():
        for rater, outcome in ratings.items():
            others = Counter(v for r, v in ratings.items() if r != rater)
            top = others.most_common(2)
            if not top or (len(top) == 2 and top[0][1] == top[1][1]):
                continue  # nobody else, or no strict majority
            agree[rater] += outcome == top[0][0]
            total[rater] += 1
    raters = {r for ratings in table.values() for r in ratings}
    return {r: Score(agree[r] / total[r] if total[r] else None, total[r]) for r in sorted(raters)}


MIN_RATERS = 3
"""raters a unit needs before its majority says anything about one of them"""


def majority_agreement(table: dict[Unit, dict[str, int]], min_raters: int = MIN_RATERS) -> dict[str, Score]:
    """Each rater's agreement with the strict majority of units rated by at least ``min_raters``."""
    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for ratings in table.values():
        if len(ratings) < min_raters:
            continue  # two raters who disagree: nothing says which one is wrong
        top = Counter(ratings.values()).most_common(2)
        if len(top) == 2 and top[0][1] == top[1][1]:
            continue  # no strict majority
        for rater, outcome in ratings.items():
            agree[rater] += outcome == top[0][0]
            total[rater] += 1
    raters = {r for ratings in table.values() for r in ratings}
    return {r: Score(agree[r] / total[r] if total[r] else None, total[r]) for r in sorted(raters)}


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval (95% by default) for ``successes`` out of ``n``; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def gold_accuracy(rows: Iterable[LabelRow], gold: dict[Hashable, Sequence[int]]) -> dict[str, Score]:
    """Each rater's pairwise accuracy against the gold rankings (gold ties are not scored)."""
    credit: defaultdict[str, float] = defaultdict(float)
    total: Counter[str] = Counter()
    for row in rows:
        if row.task not in gold:
            continue
        mine = pair_outcomes(row.ranks)
        for pair, truth in pair_outcomes(gold[row.task]).items():
            if truth == 0:
                continue
            credit[row.rater] += 1.0 if mine[pair] == truth else 0.5 if mine[pair] == 0 else 0.0
            total[row.rater] += 1
    return {r: Score(credit[r] / total[r], total[r]) for r in sorted(total)}
