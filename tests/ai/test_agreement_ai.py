"""AI labels against existing labels, by the labeling app's agreement functions."""

from __future__ import annotations

import pytest

from rlhf.feedback.agreement import LabelRow, outcome_table, pairwise_agreement
from rlhf.feedback.judge.agreement import agreement_report, gold_table, label_rows


def rec(ranks, annotator, responses=("x", "y", "z")):
    return {"prompt": "p", "responses": list(responses), "ranks": list(ranks), "annotator": annotator}


def test_hand_worked_agreement():
    ai = [rec([1, 2, 3], "ai:j")]
    humans = [rec([1, 2, 3], "h1"), rec([1, 3, 2], "h2")]
    report = agreement_report(ai, humans)
    # pairs (x,y) (x,z) (y,z): the AI agrees with h1 on 3, with h2 on 2 -> 5 of 6
    assert report["ai_vs_reference"] == {"value": pytest.approx(5 / 6, abs=1e-4), "n": 6}
    assert report["reference_vs_reference"] == {"value": pytest.approx(2 / 3, abs=1e-4), "n": 3}
    # majority of the others: (x,y) and (x,z) both +; (y,z) split 1-1, left out -> 2 of 2
    assert report["ai_vs_majority"]["ai:j"] == {"value": 1.0, "n": 2}


def test_tasks_match_whatever_order_the_responses_are_listed_in():
    humans = [rec([1, 2, 3], "h1"), rec([1, 3, 2], "h2")]
    listed_backwards = [rec([3, 2, 1], "ai:j", ("z", "y", "x"))]  # the same ranking: x > y > z
    assert agreement_report(listed_backwards, humans) == agreement_report([rec([1, 2, 3], "ai:j")], humans)
    assert agreement_report([rec([1, 2], "ai:j", ("u", "v"))], humans)["tasks"] == 0


def test_ai_vs_simulated_raters_and_gold_on_the_toy_world():
    import random

    from rlhf.toyworld import RaterPool, World, gold_score, write_response
    from rlhf.toyworld.raters import competition_ranks

    world = World.build(0, n_sft=10, n_rating=12, n_rl=5, n_eval=10)
    tasks = world.tasks("rating")
    rng = random.Random(0)
    cands = [[write_response(t, q, rng) for q in ("concise", "verbose", "wrong")] for t in tasks]
    humans = RaterPool.build(seed=0).label(tasks, cands, seed=0, raters_per_prompt=3)
    gold_ranks = [competition_ranks([gold_score(t, c) for c in cs]) for t, cs in zip(tasks, cands)]
    oracle = [rec(g, "ai:oracle", cs) | {"prompt": t.prompt} for t, cs, g in zip(tasks, cands, gold_ranks)]
    contrarian = [
        rec([len(g) + 1 - r for r in g], "ai:contrarian", cs) | {"prompt": t.prompt}
        for t, cs, g in zip(tasks, cands, gold_ranks)
    ]
    gold = gold_table([t.prompt for t in tasks], cands, gold_ranks)
    good, bad = agreement_report(oracle, humans, gold), agreement_report(contrarian, humans, gold)
    assert good["tasks"] == len(tasks)
    assert good["gold_accuracy"]["ai:oracle"]["value"] == 1.0
    assert good["ai_vs_reference"]["value"] > 0.6 > bad["ai_vs_reference"]["value"]
    assert good["krippendorff_alpha_with_ai"]["value"] > bad["krippendorff_alpha_with_ai"]["value"]
    # the same number the labeling app's function gives on the same table
    rows = label_rows(oracle, "ai") + label_rows(humans)
    table = outcome_table(rows)
    sub = {
        (u, h): {"ai:oracle": r["ai:oracle"], h: r[h]}
        for u, r in table.items()
        for h in r
        if h != "ai:oracle"
    }
    assert good["ai_vs_reference"]["value"] == pytest.approx(pairwise_agreement(sub).value, abs=1e-4)
    assert all(isinstance(r, LabelRow) for r in rows)
