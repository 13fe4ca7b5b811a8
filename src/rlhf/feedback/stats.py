"""A project's monitoring numbers: progress, per-rater throughput and agreement, flagged raters."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select

from rlhf.feedback.agreement import (
    MIN_RATERS,
    LabelRow,
    Score,
    gold_accuracy,
    kendall_tau_b,
    krippendorff_alpha,
    majority_agreement,
    mean_tau_by_rater,
    outcome_table,
    pairwise_agreement,
    wilson_interval,
)
from rlhf.feedback.db import Database, Label, Rater, Task
from rlhf.feedback.projects import get_project, progress, project_settings

MIN_COMPARISONS = 12
"""pair comparisons a rater needs before a low score can flag them (two K = 4 tasks give 12)"""
MIN_TASKS = 3
"""tasks those comparisons must come from: the pairs of one ranking stand or fall together"""


def _score(score: Score | None, tasks: int | None = None) -> dict[str, Any]:
    """A score as JSON; with ``tasks`` (a rater's proportion) also its 95% Wilson interval."""
    out: dict[str, Any] = {"value": None, "n": 0 if score is None else score.n}
    if score is not None and score.value is not None:
        out["value"] = round(score.value, 4)
    if tasks is not None:
        out["tasks"] = tasks
        bounds = wilson_interval(score.value * score.n, score.n) if out["value"] is not None else None
        out["interval"] = None if bounds is None else [round(bounds[0], 4), round(bounds[1], 4)]
    return out


def flag(score: dict[str, Any], threshold: float, what: str) -> str | None:
    """A flag when the evidence says the rater is below ``threshold``: enough comparisons from
    enough tasks, and even the upper end of the 95% interval below it."""
    if score["value"] is None or score["n"] < MIN_COMPARISONS or score["tasks"] < MIN_TASKS:
        return None
    lo, hi = score["interval"]
    if hi >= threshold:
        return None
    return f"{what} {score['value']:.2f} (95% CI {lo:.2f}-{hi:.2f}, n={score['n']}) < {threshold:.2f}"


def project_stats(db: Database, project_name: str) -> dict[str, Any]:
    """Everything the admin page shows for a project, as plain JSON-able data."""
    with db.read() as s:
        project = get_project(s, project_name)
        settings = project_settings(project)
        counts = progress(s, project)
        rows = s.execute(
            select(
                Label.task_id,
                Label.kind,
                Label.ranks,
                Label.seconds,
                Label.created_at,
                Rater.name,
                Task.is_gold,
                Task.gold_ranks,
            )
            .join(Rater, Rater.id == Label.rater_id)
            .join(Task, Task.id == Label.task_id)
            .where(Label.project_id == project.id)
        ).all()

    ranked = [LabelRow(r.task_id, r.name, r.ranks) for r in rows if r.kind == "rank"]
    gold = {r.task_id: r.gold_ranks for r in rows if r.is_gold}
    table = outcome_table(ranked)
    taus = kendall_tau_b(ranked)
    majority = majority_agreement(table)
    majority_tasks: dict[str, set] = defaultdict(set)  # tasks behind each rater's majority agreement
    for (task, _, _), ratings in table.items():
        if len(ratings) >= MIN_RATERS:
            for rater in ratings:
                majority_tasks[rater].add(task)
    gold_acc = gold_accuracy(ranked, gold)
    tau_by_rater = mean_tau_by_rater(taus)
    pair_taus = [t.value for t in taus.values() for _ in range(t.n)]

    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"ranked": 0, "skipped": 0, "seconds": [], "last": 0.0, "gold": 0}
    )
    for r in rows:
        p = per[r.name]
        p["ranked" if r.kind == "rank" else "skipped"] += 1
        p["gold"] += r.kind == "rank" and r.is_gold
        p["seconds"].append(r.seconds)
        p["last"] = max(p["last"], r.created_at)
    raters = []
    for name in sorted(per):
        p = per[name]
        median = float(np.median(p["seconds"])) if p["seconds"] else None
        agreement = _score(majority.get(name), len(majority_tasks.get(name, ())))
        gold_score = _score(gold_acc.get(name), p["gold"])
        flags = [
            f
            for f in (
                flag(agreement, project.min_agreement, "agreement with the majority"),
                flag(gold_score, project.min_gold_accuracy, "gold accuracy"),
            )
            if f
        ]
        raters.append(
            {
                "rater": name,
                "ranked": p["ranked"],
                "skipped": p["skipped"],
                "median_seconds": None if median is None else round(median, 2),
                "tasks_per_hour": None if not median else round(3600 / median, 1),
                "last_submission": p["last"],
                "majority_agreement": agreement,
                "gold_accuracy": gold_score,
                "tau_b": _score(tau_by_rater.get(name)),
                "flagged": flags,
            }
        )
    return {
        "project": settings,
        "progress": counts,
        "agreement": {
            "pairwise": _score(pairwise_agreement(table)),
            "krippendorff_alpha": _score(krippendorff_alpha(table)),
            "kendall_tau_b": _score(Score(float(np.mean(pair_taus)), len(pair_taus)) if pair_taus else None),
        },
        "tau_b_pairs": [
            {"a": a, "b": b, "tau_b": round(t.value, 4), "tasks": t.n} for (a, b), t in sorted(taus.items())
        ],
        "raters": raters,
        "min_comparisons": MIN_COMPARISONS,
        "min_tasks": MIN_TASKS,
    }
