"""Changing a submitted ranking without losing anything: rater revisions, admin corrections and
adjudications, each a new version.

- A rater may **revise** their ranking until it is used: until the project is exported after it
  was submitted, or an admin corrects it or adjudicates its task.
- The admin may **correct** any rater's ranking (a new version authored by "admin"), and
  **adjudicate** a task: give its final ranking, for instance where the raters disagree.
- Nothing is overwritten: every version is a row of ``label_versions`` (the first one included)
  or ``adjudications``; ``labels`` holds a copy of the latest version, which is what exports,
  statistics and the rater see. Exports also carry the latest adjudication of a task (io.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhf.feedback.db import (
    Adjudication,
    Assignment,
    Database,
    ExportEvent,
    Label,
    LabelVersion,
    Rater,
    Task,
    add_version,
    now,
)
from rlhf.feedback.projects import get_project
from rlhf.feedback.submit import SubmitError, check_ranking, dense_ranks, to_task_order

ADMIN = "admin"


def _ensure_original(s: Session, label: Label, rater_name: str) -> None:
    if s.scalar(select(func.count()).where(LabelVersion.label_id == label.id)) == 0:
        add_version(s, label, "submitted", rater_name)


def used_because(s: Session, label: Label) -> str | None:
    """Why a rater may no longer revise ``label`` (exported since, or reviewed), or None."""
    exported = s.scalar(
        select(func.max(ExportEvent.created_at)).where(ExportEvent.project_id == label.project_id)
    )
    if exported is not None and exported >= label.created_at:
        return "it was exported since it was submitted"
    if s.scalar(select(func.count()).where(LabelVersion.label_id == label.id, LabelVersion.author == ADMIN)):
        return "the admin has corrected it"
    if s.scalar(select(func.count()).where(Adjudication.task_id == label.task_id)):
        return "the admin has adjudicated this task"
    return None


def _own_ranking(s: Session, project_id: int, rater_id: int, task_id: int) -> Label:
    """The rater's ranking of ``task_id`` in the project; SubmitError 404 if they have none."""
    label = s.scalar(
        select(Label).where(
            Label.task_id == task_id,
            Label.rater_id == rater_id,
            Label.project_id == project_id,
            Label.kind == "rank",
        )
    )
    if label is None:
        raise SubmitError(404, f"you have no ranking of task {task_id} in this project to revise")
    return label


def revise(
    db: Database,
    project_id: int,
    rater_id: int,
    task_id: int,
    ranks: list[int],
    scores: list[int | None] | None = None,
    flags: list[list[str]] | None = None,
) -> int:
    """A rater's new ranking of a task they ranked (per-response lists in the order they saw);
    returns the new version number. SubmitError 404 if there is no such ranking, 409 if used."""
    with db.write() as s:
        label = _own_ranking(s, project_id, rater_id, task_id)
        why = used_because(s, label)
        if why is not None:
            raise SubmitError(409, f"your ranking of task {task_id} can no longer be revised: {why}")
        k = len(label.display_order)
        check_ranking(ranks, scores, flags, k)
        rater = s.get(Rater, rater_id).name
        _ensure_original(s, label, rater)
        label.ranks = to_task_order(dense_ranks(ranks), label.display_order)
        label.scores = to_task_order(scores, label.display_order) if scores and any(scores) else None
        if flags is not None and any(flags):
            label.flags = to_task_order([sorted(set(f)) for f in flags], label.display_order)
        else:
            label.flags = None
        return add_version(s, label, "revised", rater)


def correct(db: Database, project_name: str, label_id: int, ranks: list[int], note: str | None = None) -> int:
    """The admin's correction of a rater's ranking (``ranks`` in the task's response order)."""
    with db.write() as s:
        project = get_project(s, project_name)
        label = s.get(Label, label_id)
        if label is None or label.project_id != project.id or label.kind != "rank":
            raise SubmitError(404, f"no ranking {label_id} in project {project_name!r}")
        check_ranking(ranks, None, None, len(label.display_order))
        _ensure_original(s, label, s.get(Rater, label.rater_id).name)
        label.ranks = dense_ranks(ranks)
        return add_version(s, label, "corrected", ADMIN, note)


def adjudicate(
    db: Database, project_name: str, task_id: int, ranks: list[int], note: str | None = None
) -> int:
    """The admin's final ranking of a task (task order); returns its version number."""
    with db.write() as s:
        project = get_project(s, project_name)
        task = s.get(Task, task_id)
        if task is None or task.project_id != project.id:
            raise SubmitError(404, f"no task {task_id} in project {project_name!r}")
        check_ranking(ranks, None, None, task.k)
        last = s.scalar(select(func.max(Adjudication.version)).where(Adjudication.task_id == task_id)) or 0
        s.add(
            Adjudication(
                project_id=project.id,
                task_id=task_id,
                version=last + 1,
                ranks=dense_ranks(ranks),
                note=note,
                created_at=now(),
            )
        )
        return last + 1


def latest_adjudications(s: Session, project_id: int) -> dict[int, list[int]]:
    """{task id: latest adjudicated ranks} of a project."""
    rows = s.execute(
        select(Adjudication.task_id, Adjudication.version, Adjudication.ranks).where(
            Adjudication.project_id == project_id
        )
    ).all()
    latest: dict[int, tuple[int, list[int]]] = {}
    for task_id, version, ranks in rows:
        if task_id not in latest or version > latest[task_id][0]:
            latest[task_id] = (version, ranks)
    return {task_id: ranks for task_id, (_, ranks) in latest.items()}


def record_export(db: Database, project_id: int, kind: str) -> None:
    """Note that a project was exported now: rankings submitted before it count as used."""
    with db.write() as s:
        s.add(ExportEvent(project_id=project_id, kind=kind, created_at=now()))


def task_review(db: Database, project_name: str, task_id: int) -> dict[str, Any]:
    """A task with every rater's ranking and all their versions, and its adjudications."""
    with db.read() as s:
        project = get_project(s, project_name)
        task = s.get(Task, task_id)
        if task is None or task.project_id != project.id:
            raise SubmitError(404, f"no task {task_id} in project {project_name!r}")
        labels = []
        rows = s.execute(
            select(Label, Rater.name).join(Rater, Rater.id == Label.rater_id).where(Label.task_id == task_id)
        ).all()
        for label, rater in sorted(rows, key=lambda r: r[1]):
            versions = s.scalars(
                select(LabelVersion).where(LabelVersion.label_id == label.id).order_by(LabelVersion.version)
            ).all()
            labels.append(
                {
                    "label_id": label.id,
                    "rater": rater,
                    "kind": label.kind,
                    "ranks": label.ranks,
                    "skip_reason": label.skip_reason,
                    "submitted_at": label.created_at,
                    "versions": [
                        {
                            "version": v.version,
                            "kind": v.kind,
                            "author": v.author,
                            "ranks": v.ranks,
                            "note": v.note,
                            "at": v.created_at,
                        }
                        for v in versions
                    ],
                }
            )
        adjudications = s.scalars(
            select(Adjudication).where(Adjudication.task_id == task_id).order_by(Adjudication.version)
        ).all()
        return {
            "project": project_name,
            "task_id": task.id,
            "external_id": task.external_id,
            "prompt": task.prompt,
            "responses": task.responses,
            "gold_ranks": task.gold_ranks,
            "labels": labels,
            "adjudications": [
                {"version": a.version, "ranks": a.ranks, "note": a.note, "at": a.created_at}
                for a in adjudications
            ],
        }


def review_queue(db: Database, project_name: str, limit: int = 200) -> list[dict[str, Any]]:
    """Tasks with rankings, most disputed first: for each, its rankings, the share of response
    pairs the raters did not order unanimously, and whether it is adjudicated."""
    from rlhf.feedback.agreement import pair_outcomes

    with db.read() as s:
        project = get_project(s, project_name)
        rows = s.execute(
            select(Label.task_id, Label.ranks, Task.external_id)
            .join(Task, Task.id == Label.task_id)
            .where(Label.project_id == project.id, Label.kind == "rank")
        ).all()
        adjudicated = latest_adjudications(s, project.id)
    by_task: dict[int, dict[str, Any]] = {}
    for task_id, ranks, external_id in rows:
        entry = by_task.setdefault(task_id, {"task_id": task_id, "external_id": external_id, "rankings": []})
        entry["rankings"].append(ranks)
    out = []
    for entry in by_task.values():
        outcomes = [pair_outcomes(r) for r in entry.pop("rankings")]
        pairs = list(outcomes[0])
        split = sum(len({o[p] for o in outcomes}) > 1 for p in pairs)
        out.append(
            {
                **entry,
                "rankings": len(outcomes),
                "disputed": round(split / len(pairs), 4) if pairs else 0.0,
                "adjudicated": entry["task_id"] in adjudicated,
            }
        )
    out.sort(key=lambda e: (-e["disputed"], -e["rankings"], e["task_id"]))
    return out[:limit]


def rater_answers(db: Database, project_id: int, rater_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """A rater's latest rankings in a project, newest first, with whether each can be revised."""
    with db.read() as s:
        labels = s.scalars(
            select(Label)
            .where(Label.project_id == project_id, Label.rater_id == rater_id, Label.kind == "rank")
            .order_by(Label.created_at.desc())
            .limit(limit)
        ).all()
        out = []
        for label in labels:
            task = s.get(Task, label.task_id)
            out.append(
                {
                    "task_id": label.task_id,
                    "prompt": task.prompt,
                    "submitted_at": label.created_at,
                    "locked": used_because(s, label),
                }
            )
    return out


def revision_view(db: Database, project_id: int, rater_id: int, task_id: int) -> dict[str, Any]:
    """What the revise page shows: the task in the rater's display order, their current ranking."""
    with db.read() as s:
        label = _own_ranking(s, project_id, rater_id, task_id)
        task = s.get(Task, task_id)
        a = s.scalar(select(Assignment).where(Assignment.task_id == task_id, Assignment.rater_id == rater_id))
        order = list(a.display_order)
        return {
            "task_id": task_id,
            "prompt": task.prompt,
            "responses": [task.responses[i] for i in order],
            "ranks": [label.ranks[i] for i in order],
            "scores": [label.scores[i] for i in order] if label.scores else None,
            "flags": [label.flags[i] for i in order] if label.flags else None,
            "locked": used_because(s, label),
        }
