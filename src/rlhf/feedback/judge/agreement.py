"""How well AI labels agree with existing ones (human or simulated), by the labeling app's own
statistics (``rlhf.feedback.agreement``), so an AI judge is measured exactly as a rater would be.

Tasks are matched by content: the prompt and the set of responses, whatever order a file lists
them in (each ranking is put in one canonical response order first). The AI enters the outcome
table as one more rater, ``ai:<model>``:

- ``ai_vs_reference``: share of (pair of responses, reference rater) where the AI ordered the pair
  as that rater did (ties must match ties), pooled over raters; ``reference_vs_reference`` is the
  same between the reference raters themselves, the ceiling to read it against;
- ``ai_vs_majority``: the AI's agreement with the majority of the reference raters of a pair
  (``leave_one_out``);
- Krippendorff's alpha of the reference raters with and without the AI;
- ``gold_accuracy``: with gold rankings, the AI's pairwise accuracy on every task that has one,
  next to the mean over the reference raters (RLAIF's "AI labeler alignment", Lee et al. 2023, sec. 3.1).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from rlhf.feedback.agreement import (
    LabelRow,
    Score,
    gold_accuracy,
    krippendorff_alpha,
    leave_one_out,
    outcome_table,
    pairwise_agreement,
)


def task_key(prompt: Any, responses: Sequence[str]) -> tuple[str, list[int]]:
    """(key of the task's content, canonical order: indices of ``responses`` sorted by text)."""
    order = sorted(range(len(responses)), key=lambda i: responses[i])
    blob = json.dumps([prompt, [responses[i] for i in order]], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24], order


def label_rows(records: Sequence[dict[str, Any]], default_rater: str = "reference") -> list[LabelRow]:
    """Ranking records as LabelRows in canonical response order. Records without an annotator get
    a distinct name per task (``reference-0``, ``reference-1``, ...), so they are not merged."""
    rows, unnamed = [], defaultdict(int)
    for rec in records:
        key, order = task_key(rec["prompt"], rec["responses"])
        rater = rec.get("annotator")
        if rater is None:
            rater = f"{default_rater}-{unnamed[key]}"
            unnamed[key] += 1
        rows.append(LabelRow(key, str(rater), [rec["ranks"][i] for i in order]))
    return rows


def gold_table(prompts: Sequence[Any], responses: Sequence[Sequence[str]], ranks: Sequence[Sequence[int]]):
    """{task key: ranks in canonical order} for gold rankings given in each task's own order."""
    out: dict[Hashable, list[int]] = {}
    for p, resp, r in zip(prompts, responses, ranks):
        key, order = task_key(p, resp)
        out[key] = [r[i] for i in order]
    return out


def _score(s: Score) -> dict[str, Any]:
    return {"value": None if s.value is None else round(s.value, 4), "n": s.n}


def _pooled(table: dict, left: set[str], right: set[str]) -> Score:
    """Pairwise agreement restricted to rater pairs with one rater from each side, pooled over
    units: each (unit, pair of raters) becomes a unit of its own two-rater table."""
    sub = {
        (unit, a, b): {a: ratings[a], b: ratings[b]}
        for unit, ratings in table.items()
        for a in sorted(left & ratings.keys())
        for b in sorted(right & ratings.keys())
        if a != b
    }
    return pairwise_agreement(sub)


def agreement_report(
    ai_records: Sequence[dict[str, Any]],
    reference_records: Sequence[dict[str, Any]],
    gold: dict[Hashable, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Agreement of AI rankings with reference rankings on the tasks both labelled (module doc)."""
    all_ai, all_ref = label_rows(ai_records, "ai"), label_rows(reference_records)
    shared = {r.task for r in all_ai} & {r.task for r in all_ref}
    ai = [r for r in all_ai if r.task in shared]
    ref = [r for r in all_ref if r.task in shared]
    ai_names, ref_names = {r.rater for r in ai}, {r.rater for r in ref}
    both = outcome_table(ai + ref)
    only_ref = outcome_table(ref)
    loo = leave_one_out(both)
    report: dict[str, Any] = {
        "tasks": len(shared),
        "ai_tasks": len({r.task for r in all_ai}),
        "ai_vs_reference": _score(_pooled(both, ai_names, ref_names)),
        "reference_vs_reference": _score(pairwise_agreement(only_ref)),
        "ai_vs_majority": {name: _score(loo[name]) for name in sorted(ai_names) if name in loo},
        "krippendorff_alpha_reference": _score(krippendorff_alpha(only_ref)),
        "krippendorff_alpha_with_ai": _score(krippendorff_alpha(both)),
    }
    if gold is not None:
        acc = gold_accuracy(all_ai + all_ref, gold)  # every task with a gold ranking, shared or not
        ai_names, ref_names = {r.rater for r in all_ai}, {r.rater for r in all_ref}
        ref_acc = [acc[r] for r in ref_names if r in acc]
        n = sum(s.n for s in ref_acc)
        report["gold_accuracy"] = {
            **{name: _score(acc[name]) for name in sorted(ai_names) if name in acc},
            "reference_mean": _score(Score(sum(s.value * s.n for s in ref_acc) / n if n else None, n)),
        }
    return report
