"""Agreement statistics on hand-worked examples, and the monitoring table built from a database."""

from __future__ import annotations

import math
import random

import pytest

from rlhf.feedback import assign
from rlhf.feedback.agreement import (
    LabelRow,
    gold_accuracy,
    kendall_tau_b,
    krippendorff_alpha,
    leave_one_out,
    majority_agreement,
    outcome_table,
    pair_outcomes,
    pairwise_agreement,
    wilson_interval,
)
from rlhf.feedback.auth import create_rater
from rlhf.feedback.db import Rater
from rlhf.feedback.io import import_records
from rlhf.feedback.projects import create_project
from rlhf.feedback.stats import project_stats
from rlhf.feedback.submit import Submission, record

from .conftest import candidates


def test_pair_outcomes_sign_convention():
    # response 0 ranked 1 (best) beats 2; 1 and 2 tie
    assert pair_outcomes([1, 2, 2]) == {(0, 1): 1, (0, 2): 1, (1, 2): 0}
    assert pair_outcomes([3, 1, 2]) == {(0, 1): -1, (0, 2): -1, (1, 2): 1}


def test_two_raters_one_disagreement():
    rows = [LabelRow("t", "A", [1, 2, 3]), LabelRow("t", "B", [1, 3, 2])]
    table = outcome_table(rows)
    # outcomes: (0,1) +1/+1, (0,2) +1/+1, (1,2) +1/-1 -> 2 of 3 agree
    assert pairwise_agreement(table) == (pytest.approx(2 / 3), 3)
    # alpha sees each unit in both orientations: (+,+) (+,+) (+,-) and mirrored (-,-) (-,-) (-,+)
    # coincidences o(+,+) = o(-,-) = 4, o(+,-) = o(-,+) = 2; n(+) = n(-) = 6, n = 12
    # D_o = 4/12, D_e = 2*6*6/(12*11) = 6/11 -> alpha = 1 - (1/3)/(6/11) = 7/18
    assert krippendorff_alpha(table) == (pytest.approx(7 / 18), 3)
    # tau-b: 2 concordant, 1 discordant, no ties -> (2 - 1) / 3
    assert kendall_tau_b(rows)[("A", "B")] == (pytest.approx(1 / 3), 1)


def test_alpha_does_not_depend_on_which_response_is_listed_first():
    # the same judgements with the responses of the task listed in reverse order
    rows = [LabelRow("t", "A", [1, 2, 3]), LabelRow("t", "B", [1, 3, 2])]
    flipped = [LabelRow("t", r.rater, r.ranks[::-1]) for r in rows]
    assert krippendorff_alpha(outcome_table(rows)).value == pytest.approx(
        krippendorff_alpha(outcome_table(flipped)).value
    )


def test_alpha_with_ties_hand_worked():
    # A [1,1,2] -> (0,1)=0 (0,2)=+ (1,2)=+ ; B [1,2,2] -> (0,1)=+ (0,2)=+ (1,2)=0; plus the mirror units
    # o(0,+) = o(+,0) = o(0,-) = o(-,0) = 2, o(+,+) = o(-,-) = 2; n(-) = n(0) = n(+) = 4, n = 12
    table = outcome_table([LabelRow("t", "A", [1, 1, 2]), LabelRow("t", "B", [1, 2, 2])])
    # nominal: D_o = 8/12, D_e = (144 - 48)/(12*11) = 8/11 -> alpha = 1 - 11/12 = 1/12
    assert krippendorff_alpha(table, "nominal").value == pytest.approx(1 / 12)
    # ordinal: delta(-,0) = delta(0,+) = (4 + 4 - 4)^2 = 16, delta(-,+) = (12 - 4)^2 = 64
    # D_o = 8*16/12, D_e = 2*16*(16 + 16 + 64)/132 -> alpha = 1 - (128/12)/(3072/132) = 13/24:
    # a tie against a preference is a smaller disagreement than two opposite preferences
    assert krippendorff_alpha(table, "ordinal").value == pytest.approx(13 / 24)


def test_alpha_three_raters_one_dissenter():
    # each unit (+, +, -), each mirror (-, -, +): per unit o(+,+) = 1, o(+,-) = o(-,+) = 1 (pairs / (m-1))
    # over 6 units n(+) = n(-) = 9: D_o = 12/18, D_e = 2*9*9/(18*17) -> alpha = 1 - 204/162 = -7/27
    rows = [LabelRow("t", "A", [1, 2, 3]), LabelRow("t", "B", [1, 2, 3]), LabelRow("t", "C", [3, 2, 1])]
    assert krippendorff_alpha(outcome_table(rows)).value == pytest.approx(-7 / 27)


def test_alpha_perfect_and_undefined():
    rows = [LabelRow(t, r, [1, 2, 3] if t % 2 else [3, 1, 2]) for t in range(4) for r in "ABC"]
    assert krippendorff_alpha(outcome_table(rows)).value == pytest.approx(1.0)
    # raters who agree on every pair agree perfectly, even if the file always lists the best first
    same = [LabelRow(0, r, [1, 2, 3]) for r in "AB"]
    assert krippendorff_alpha(outcome_table(same)) == (1.0, 3)
    # all ties: no variation at all, alpha undefined (None), not a crash or a nan
    assert krippendorff_alpha(outcome_table([LabelRow(0, r, [1, 1]) for r in "AB"])) == (None, 1)
    # a single rater: nothing to compare
    single = outcome_table([LabelRow(0, "A", [1, 2])])
    assert pairwise_agreement(single) == (None, 0)
    assert krippendorff_alpha(single) == (None, 0)


def _nominal_alpha_by_hand(units: list[list[int]]) -> float:
    """Textbook nominal alpha from the coincidence matrix (Krippendorff 2011, sec. 3)."""
    from collections import Counter as C

    o: C = C()
    for values in units:
        m = len(values)
        for a in range(m):
            for b in range(m):
                if a != b:
                    o[(values[a], values[b])] += 1 / (m - 1)
    n_c: C = C()
    for (c, _), w in o.items():
        n_c[c] += w
    n = sum(n_c.values())
    d_o = sum(w for (c, k), w in o.items() if c != k) / n
    d_e = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n * (n - 1))
    return 1 - d_o / d_e


def test_alpha_matches_the_textbook_formula_on_random_data_with_gaps():
    rng = random.Random(0)
    rows = []
    for task in range(12):
        truth = rng.sample(range(1, 5), 4)
        for rater in rng.sample("ABCDE", rng.randint(2, 5)):  # missing raters per task
            noisy = [r + rng.choice([0, 0, 1, -1]) for r in truth]
            rows.append(LabelRow(task, rater, noisy))
    table = outcome_table(rows)
    units = [list(v.values()) for v in table.values() if len(v) >= 2]
    both = units + [[-x for x in u] for u in units]
    assert krippendorff_alpha(table, "nominal").value == pytest.approx(_nominal_alpha_by_hand(both))


def test_tau_b_with_ties_matches_hand_and_scipy():
    from scipy.stats import kendalltau

    # A ties 0 and 1: concordant 2, discordant 0; tau-b = 2 / sqrt((3 - 1) * (3 - 0)) = 0.8165
    taus = kendall_tau_b([LabelRow("t", "A", [1, 1, 2]), LabelRow("t", "B", [1, 2, 3])])
    assert taus[("A", "B")].value == pytest.approx(2 / math.sqrt(6))
    assert taus[("A", "B")].value == pytest.approx(kendalltau([1, 1, 2], [1, 2, 3], variant="b").statistic)
    # an all-tied ranking has no order: left out, not a nan
    assert kendall_tau_b([LabelRow("t", "A", [1, 1, 1]), LabelRow("t", "B", [1, 2, 3])]) == {}


def test_tau_b_averages_over_shared_tasks():
    rows = [
        LabelRow(1, "A", [1, 2, 3]),
        LabelRow(1, "B", [1, 2, 3]),  # tau 1
        LabelRow(2, "A", [1, 2, 3]),
        LabelRow(2, "B", [3, 2, 1]),  # tau -1
        LabelRow(3, "A", [1, 2, 3]),
    ]  # not shared
    assert kendall_tau_b(rows)[("A", "B")] == (pytest.approx(0.0), 2)


def test_leave_one_out_against_the_others_majority():
    rows = [LabelRow("t", r, [1, 2, 3]) for r in "ABD"] + [LabelRow("t", "C", [3, 2, 1])]
    loo = leave_one_out(outcome_table(rows))
    assert loo["A"] == (1.0, 3)  # others: B +1, C -1, D +1 -> majority +1, A agrees on all 3 pairs
    assert loo["C"] == (0.0, 3)  # others all +1, C says -1
    # with 3 raters, A's others split 1:1 -> no majority, nothing counted
    three = leave_one_out(outcome_table(rows[:2] + rows[3:]))
    assert three["A"] == (None, 0) and three["C"] == (0.0, 3)


def test_majority_agreement_needs_three_raters_and_counts_the_good_ones():
    rows = [LabelRow("t", r, [1, 2, 3]) for r in "AB"] + [LabelRow("t", "C", [3, 2, 1])]
    three = majority_agreement(outcome_table(rows))
    # A and B form the majority on each of the 3 pairs; leave-one-out counted nothing for them
    assert three == {"A": (1.0, 3), "B": (1.0, 3), "C": (0.0, 3)}
    assert leave_one_out(outcome_table(rows))["A"] == (None, 0)
    two = majority_agreement(outcome_table([rows[0], rows[2]]))  # two raters: who is wrong?
    assert two == {"A": (None, 0), "C": (None, 0)}
    split = [LabelRow("u", "A", [1, 2]), LabelRow("u", "B", [2, 1]), LabelRow("u", "C", [1, 1])]
    assert majority_agreement(outcome_table(split))["A"] == (None, 0)  # +1, -1, tie: no majority


def test_wilson_interval_against_published_values():
    # Brown, Cai and DasGupta (2001), and the closed form at 0 successes: z^2 / (n + z^2)
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959964**2 / (10 + 1.959964**2))
    lo, hi = wilson_interval(36, 36)
    assert hi == 1.0 and round(lo, 4) == 0.9036
    assert wilson_interval(0, 0) is None


def test_gold_accuracy_counts_ties_half_and_skips_gold_ties():
    gold = {"g": [1, 2, 3], "h": [1, 1, 2]}
    rows = [
        LabelRow("g", "A", [1, 3, 2]),  # (0,1) ok (0,2) ok (1,2) wrong -> 2/3
        LabelRow("g", "B", [1, 1, 2]),  # (0,1) tie -> 1/2, rest ok -> 2.5/3
        LabelRow("h", "C", [2, 1, 3]),  # gold tie (0,1) not scored; (0,2) ok, (1,2) ok -> 2/2
        LabelRow("x", "A", [3, 2, 1]),
    ]  # not a gold task
    acc = gold_accuracy(rows, gold)
    assert acc["A"] == (pytest.approx(2 / 3), 3)
    assert acc["B"] == (pytest.approx(2.5 / 3), 3)
    assert acc["C"] == (1.0, 2)


def _answer(db, project_id: int, rater: str, ranks_of) -> None:
    """Let ``rater`` answer every task they are given, ranking by ``ranks_of(task responses)``."""
    with db.read() as s:
        rater_id = s.query(Rater).filter_by(name=rater).one().id
    rng = random.Random(rater)
    while (view := assign.next_task(db, project_id, rater_id, rng)) is not None:
        shown = ranks_of(view.responses)
        record(db, project_id, rater_id, Submission(f"{rater}-{view.task_id}-xx", view.task_id, ranks=shown))


def _people(db, *names: str) -> None:
    for name in names:
        create_rater(db, name)


def honest(responses):  # "answer i.0" best ... "answer i.3" worst: the gold order
    return [int(r.rsplit(".", 1)[1]) + 1 for r in responses]


def reversed_(responses):
    return [4 - int(r.rsplit(".", 1)[1]) for r in responses]


def test_project_stats_flag_the_adversarial_rater(db):
    create_project(db, "s", overlap=4, gold_fraction=1.0)  # gold first, so all see every gold task
    import_records(db, "s", candidates(9, gold_every=3))  # tasks 0, 3, 6 are gold (ranked in order)
    _people(db, "good1", "good2", "good3", "bad")
    for name in ("good1", "good2", "good3"):
        _answer(db, 1, name, honest)
    _answer(db, 1, "bad", reversed_)

    stats = project_stats(db, "s")
    assert stats["progress"] == {
        "tasks": 6,
        "gold_tasks": 3,
        "complete_tasks": 6,
        "rankings": 36,
        "skips": 0,
        "open_assignments": 0,
    }
    by = {r["rater"]: r for r in stats["raters"]}
    assert by["good1"]["majority_agreement"] == {"value": 1.0, "n": 54, "tasks": 9, "interval": [0.9336, 1.0]}
    assert by["good1"]["flagged"] == []
    assert by["bad"]["majority_agreement"]["value"] == 0.0 and by["bad"]["majority_agreement"]["n"] == 54
    assert by["bad"]["gold_accuracy"] == {"value": 0.0, "n": 18, "tasks": 3, "interval": [0.0, 0.1759]}
    assert by["good2"]["gold_accuracy"]["value"] == 1.0
    assert by["bad"]["flagged"] == [
        "agreement with the majority 0.00 (95% CI 0.00-0.07, n=54) < 0.60",
        "gold accuracy 0.00 (95% CI 0.00-0.18, n=18) < 0.70",
    ]
    # 3 of 4 raters agree on every pair: 3 of 6 rater pairs agree per unit
    assert stats["agreement"]["pairwise"] == {"value": 0.5, "n": 6 * 54}
    assert stats["agreement"]["krippendorff_alpha"]["value"] < 0.2
    assert {t["a"] + "/" + t["b"]: t["tau_b"] for t in stats["tau_b_pairs"]}["bad/good1"] == -1.0


def test_flags_need_evidence(db):
    # one gold task answered backwards: 6 comparisons from 1 task are not evidence
    create_project(db, "g", overlap=1, gold_fraction=1.0)
    import_records(db, "g", candidates(1, gold_every=1))
    _people(db, "new")
    _answer(db, 1, "new", reversed_)
    (new,) = project_stats(db, "g")["raters"]
    assert new["gold_accuracy"]["value"] == 0.0 and new["gold_accuracy"]["interval"] == [0.0, 0.3903]
    assert new["flagged"] == []

    # overlap 2, a perfect rater paired with a backwards one: nothing says which is wrong
    create_project(db, "o2", overlap=2, gold_fraction=0.0)
    import_records(db, "o2", candidates(8, prefix="o"))
    _people(db, "perfect", "backwards")
    _answer(db, 2, "perfect", honest)
    _answer(db, 2, "backwards", reversed_)
    by = {r["rater"]: r for r in project_stats(db, "o2")["raters"]}
    assert by["perfect"]["flagged"] == [] and by["perfect"]["majority_agreement"]["n"] == 0

    # overlap 3, two good raters and a backwards one: the good ones are measured, and pass
    create_project(db, "o3", overlap=3, gold_fraction=0.0)
    import_records(db, "o3", candidates(4, prefix="t"))
    _people(db, "g1", "g2", "b")
    for name, how in (("g1", honest), ("g2", honest), ("b", reversed_)):
        _answer(db, 3, name, how)
    by = {r["rater"]: r for r in project_stats(db, "o3")["raters"]}
    assert by["g1"]["majority_agreement"]["n"] == 24 and by["g1"]["majority_agreement"]["value"] == 1.0
    assert by["g1"]["flagged"] == [] and by["g2"]["flagged"] == []
    assert by["b"]["flagged"] == ["agreement with the majority 0.00 (95% CI 0.00-0.14, n=24) < 0.60"]
