"""Task assignment: each task goes to ``overlap`` distinct raters, nobody gets a task twice, and it
stays so when many raters ask for work at once.

Two guards make it correct under concurrency on any backend, not only on SQLite's single writer:

1. the overlap cap is taken with one conditional UPDATE,
   ``UPDATE tasks SET n_active = n_active + 1 WHERE id = :t AND n_active < :overlap``, which the
   database applies atomically (a second writer re-checks the condition after the first commits);
   ``n_active`` counts open and submitted assignments, so a skip or an expired lease frees a slot;
2. the assignment row is unique on (task, rater): if two requests of the same rater race for the
   same task, the second insert fails inside a savepoint and the next candidate is tried.

Finding work under contention: a rater is told "nothing left" only when a query that sees every
committed assignment finds no task with room for them, never because they lost races for the
tasks they looked at. On PostgreSQL the candidate is picked with ``SELECT ... FOR UPDATE SKIP
LOCKED``: concurrent raters each lock a different task instead of all reaching for the same one
(under READ COMMITTED they used to, and most lost the conditional UPDATE); when every open task is
locked by someone else, one more ``FOR UPDATE`` waits for those to commit and looks again.
SQLite has one writer at a time (``BEGIN IMMEDIATE``), so there nobody races inside a transaction.
A transaction aborted by the database (deadlock, serialization failure) is retried whole.

Gold tasks (a known ranking) are not capped: every rater may get each once. A rater's next task is
a gold one with probability ``gold_fraction`` while any is left for them, so raters cannot tell
which tasks are checks. The display order of the K responses is shuffled per rater and recorded,
so position bias averages out across raters and can be measured afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhf.feedback.db import Assignment, Database, Label, Project, Rater, Task, now, retry_conflicts

CANDIDATES = 16
"""tasks looked at per round on SQLite (nobody can take them meanwhile: one writer at a time)"""
MAX_ROUNDS = 200


@dataclass
class TaskView:
    """One task as a rater sees it: responses in their shuffled display order."""

    assignment_id: int
    task_id: int
    prompt: Any
    responses: list[str]
    """in display order"""
    display_order: list[int]
    """display_order[d] = index in the task of the response shown at position d"""
    assigned_at: float


@dataclass
class RaterProgress:
    ranked: int
    skipped: int
    available: int
    """tasks this rater could still be given"""


def _view(a: Assignment, task: Task) -> TaskView:
    return TaskView(
        a.id,
        task.id,
        task.prompt,
        [task.responses[i] for i in a.display_order],
        list(a.display_order),
        a.assigned_at,
    )


def _free_slots(s: Session, assignments: list[Assignment], status: str) -> int:
    for a in assignments:
        a.status = status
        s.execute(update(Task).where(Task.id == a.task_id).values(n_active=Task.n_active - 1))
    return len(assignments)


def release_stale(s: Session, project: Project, at: float | None = None) -> int:
    """Expire the project's open assignments older than its lease; returns how many."""
    cutoff = (at or now()) - project.lease_minutes * 60
    stale = s.scalars(
        select(Assignment).where(
            Assignment.project_id == project.id, Assignment.status == "open", Assignment.assigned_at < cutoff
        )
    ).all()
    return _free_slots(s, list(stale), "expired")


def release_rater(s: Session, rater_id: int) -> int:
    """Give back every open assignment of a rater (on disabling them)."""
    return release_assignments(s, rater_id)


def release_assignments(s: Session, rater_id: int, project_id: int | None = None) -> int:
    """Give back a rater's open assignments, in one project or all (on removal or disabling)."""
    query = select(Assignment).where(Assignment.rater_id == rater_id, Assignment.status == "open")
    if project_id is not None:
        query = query.where(Assignment.project_id == project_id)
    return _free_slots(s, list(s.scalars(query).all()), "released")


def take_slot(s: Session, task_id: int, is_gold: bool, overlap: int) -> bool:
    """Count one more active assignment on a task if the overlap cap allows it (atomic)."""
    cond = [Task.id == task_id] if is_gold else [Task.id == task_id, Task.n_active < overlap]
    result = s.execute(update(Task).where(*cond).values(n_active=Task.n_active + 1))
    return result.rowcount == 1


def _not_assigned_to(rater_id: int):
    return ~exists().where(Assignment.task_id == Task.id, Assignment.rater_id == rater_id)


def _candidates(
    s: Session,
    project: Project,
    rater_id: int,
    gold: bool,
    lock: str | None = None,
    exclude: frozenset[int] = frozenset(),
) -> list[tuple[int, int]]:
    """(task id, number of responses) of tasks the rater may get; texts are loaded only for the one taken.

    ``lock`` (PostgreSQL): "skip" locks one free candidate row, skipping rows other transactions
    hold; "wait" locks one, waiting for its holder to commit (PostgreSQL then re-checks the
    conditions on the new row, and may return nothing if it no longer qualifies).
    """
    query = select(Task.id, Task.k).where(
        Task.project_id == project.id, Task.is_gold.is_(gold), _not_assigned_to(rater_id)
    )
    if exclude:
        query = query.where(Task.id.not_in(exclude))
    if gold:
        query = query.order_by(func.random())
    else:
        # nearly complete tasks first: finished tasks are what export and agreement need
        query = query.where(Task.n_active < project.overlap).order_by(Task.n_active.desc(), Task.id)
    if lock is not None:
        # NO KEY UPDATE: unlike FOR UPDATE it does not block the foreign-key checks (FOR KEY SHARE)
        # of submissions to the same task, which would otherwise wait on us and we on them
        query = query.limit(1).with_for_update(of=Task, skip_locked=lock == "skip", key_share=True)
    else:
        query = query.limit(CANDIDATES)
    return [tuple(row) for row in s.execute(query).all()]


class Contention(RuntimeError):
    """No task could be locked after many rounds, though some have room: answered 503, retry."""


def _rounds(s: Session, project: Project, rater_id: int, gold: bool, locking: bool):
    """Candidate lists until no task has room for the rater; each round sees what committed since."""
    if not locking:  # one writer at a time: nobody can take these tasks before we do
        batch = _candidates(s, project, rater_id, gold)
        if batch:
            yield batch
        return
    tried: set[int] = set()
    for _ in range(MAX_ROUNDS):
        ex = frozenset(tried)
        batch = _candidates(s, project, rater_id, gold, "skip", ex) or _candidates(
            s, project, rater_id, gold, "wait", ex
        )
        if not batch:
            if not _candidates(s, project, rater_id, gold, None, ex):
                return  # a fresh look at every committed row: nothing has room for this rater
            continue  # the row we waited for changed under us; others may still have room
        yield batch
        tried.update(task_id for task_id, _ in batch)
    raise Contention("every task with room was busy; try again in a moment")


def current_task(s: Session, project: Project, rater_id: int) -> TaskView | None:
    """The rater's open assignment in this project (oldest first), if any."""
    a = s.scalars(
        select(Assignment)
        .where(
            Assignment.project_id == project.id, Assignment.rater_id == rater_id, Assignment.status == "open"
        )
        .order_by(Assignment.id)
        .limit(1)
    ).first()
    return None if a is None else _view(a, s.get(Task, a.task_id))


def next_task(
    db: Database, project_id: int, rater_id: int, rng: random.Random | None = None
) -> TaskView | None:
    """The rater's open task, else a newly assigned one, else None (nothing left for them)."""
    rng = rng or random.Random()
    with db.read() as s:  # a page reload: no need to queue for the write lock
        held = current_task(s, s.get(Project, project_id), rater_id)
    if held is not None:
        return held
    return retry_conflicts(lambda: _assign(db, project_id, rater_id, rng))


def _assign(db: Database, project_id: int, rater_id: int, rng: random.Random) -> TaskView | None:
    with db.write() as s:
        # one assignment at a time per rater: on PostgreSQL the rater's row lock queues a second
        # tab's request until the first commits (SQLite has one writer anyway, and no FOR UPDATE)
        s.execute(select(Rater.id).where(Rater.id == rater_id).with_for_update(key_share=True))
        project = s.get(Project, project_id)
        held = current_task(s, project, rater_id)  # again under the lock: another tab may have won
        if held is not None:
            return held
        release_stale(s, project)
        want_gold = project.gold_fraction > 0 and rng.random() < project.gold_fraction
        order = (True, False) if want_gold else (False,)
        for gold in order:
            for batch in _rounds(s, project, rater_id, gold, locking=not db.is_sqlite):
                for task_id, k in batch:
                    view = _try_take(s, project, rater_id, task_id, k, gold, rng)
                    if view is not None:
                        return view
        return None


def _try_take(
    s: Session, project: Project, rater_id: int, task_id: int, k: int, gold: bool, rng: random.Random
) -> TaskView | None:
    try:
        with s.begin_nested():  # a lost race on (task, rater) undoes only this try
            if not take_slot(s, task_id, gold, project.overlap):
                return None
            shown = list(range(k))
            rng.shuffle(shown)
            a = Assignment(
                project_id=project.id,
                task_id=task_id,
                rater_id=rater_id,
                display_order=shown,
                assigned_at=now(),
            )
            s.add(a)
            s.flush()
    except IntegrityError:
        return None
    return _view(a, s.get(Task, task_id))


def rater_progress(s: Session, project: Project, rater_id: int) -> RaterProgress:
    """What a rater has done in a project and how many tasks they could still get."""
    kinds = dict(
        s.execute(
            select(Label.kind, func.count())
            .where(Label.project_id == project.id, Label.rater_id == rater_id)
            .group_by(Label.kind)
        ).all()
    )
    available = s.scalar(
        select(func.count())
        .select_from(Task)
        .where(
            Task.project_id == project.id,
            Task.is_gold.is_(False),
            Task.n_active < project.overlap,
            _not_assigned_to(rater_id),
        )
    )
    return RaterProgress(kinds.get("rank", 0), kinds.get("skip", 0), available or 0)
