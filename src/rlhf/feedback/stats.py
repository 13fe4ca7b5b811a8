"""A project's monitoring numbers: progress, per-rater throughput and agreement, flagged raters."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select

from rlhf.feedback.agreement import (
    LabelRow,
    Score,
    gold_accuracy,
    kendall_tau_b,
    krippendorff_alpha,
    leave_one_out,
    mean_tau_by_rater,
    outcome_table,
    pairwise_agreement,
)
from rlhf.feedback.db import Database, Label, Rater, Task
from rlhf.feedback.projects import get_project, progress, project_settings

MIN_EVIDENCE = 6
"""pair comparisons a rater needs before a low score flags them (one K = 4 task gives 6)"""


def _score(score: Score | None) -> dict[str, Any]:
    if score is None:
        return {"value": None, "n": 0}
    return {"value": None if score.value is None else round(score.value, 4), "n": score.n}


def _flags(loo: Score | None, gold: Score | None, min_agreement: float, min_gold: float) -> list[str]:
    out = []
    if loo is not None and loo.value is not None and loo.n >= MIN_EVIDENCE and loo.value < min_agreement:
        out.append(f"agreement with others {loo.value:.2f} < {min_agreement:.2f}")
    if gold is not None and gold.n >= MIN_EVIDENCE and gold.value < min_gold:
        out.append(f"gold accuracy {gold.value:.2f} < {min_gold:.2f}")
    return out


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
    loo = leave_one_out(table)
    gold_acc = gold_accuracy(ranked, gold)
    tau_by_rater = mean_tau_by_rater(taus)
    pair_taus = [t.value for t in taus.values() for _ in range(t.n)]

    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"ranked": 0, "skipped": 0, "seconds": [], "last": 0.0}
    )
    for r in rows:
        p = per[r.name]
        p["ranked" if r.kind == "rank" else "skipped"] += 1
        p["seconds"].append(r.seconds)
        p["last"] = max(p["last"], r.created_at)
    raters = []
    for name in sorted(per):
        p = per[name]
        median = float(np.median(p["seconds"])) if p["seconds"] else None
        flags = _flags(loo.get(name), gold_acc.get(name), project.min_agreement, project.min_gold_accuracy)
        raters.append(
            {
                "rater": name,
                "ranked": p["ranked"],
                "skipped": p["skipped"],
                "median_seconds": None if median is None else round(median, 2),
                "tasks_per_hour": None if not median else round(3600 / median, 1),
                "last_submission": p["last"],
                "loo_agreement": _score(loo.get(name)),
                "gold_accuracy": _score(gold_acc.get(name)),
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
        "min_evidence": MIN_EVIDENCE,
    }
