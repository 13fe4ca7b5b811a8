"""Recording a rater's answer (a ranking or a skip), idempotently.

The client makes a random ``submission_id`` when it shows a task and sends the same id on every
retry. The server stores the answer and acknowledges only after the commit; a retry of an
acknowledged (or a lost-acknowledgement) submission finds the stored row by that id and gets the
same answer back, so a ranking is never stored twice, and with ``labels (task, rater)`` unique a
second, different submission for the same task is refused rather than stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from rlhf.feedback.assign import take_slot
from rlhf.feedback.db import (
    Assignment,
    Database,
    Label,
    Project,
    Rater,
    Task,
    add_version,
    now,
    retry_conflicts,
)

Flag = Literal["harmful", "factual_error", "off_topic"]
FLAGS: tuple[str, ...] = get_args(Flag)
SCORE_RANGE = (1, 7)


class SubmitError(ValueError):
    """A submission the server cannot take; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Submission:
    """What a client sends; per-response lists are in the order the rater saw (display order)."""

    submission_id: str
    task_id: int
    action: str = "rank"
    """rank | skip"""
    ranks: list[int] | None = None
    scores: list[int | None] | None = None
    flags: list[list[str]] | None = None
    skip_reason: str | None = None
    elapsed_ms: int | None = None


@dataclass
class Receipt:
    label_id: int
    task_id: int
    action: str
    duplicate: bool
    """True when this submission_id had been stored before (a retry)"""


def dense_ranks(ranks: list[int]) -> list[int]:
    """Ranks renumbered 1..m keeping order and ties: [1, 3, 3, 7] -> [1, 2, 2, 3]."""
    levels = {r: i + 1 for i, r in enumerate(sorted(set(ranks)))}
    return [levels[r] for r in ranks]


def to_task_order(values: list, display_order: list[int]) -> list:
    """Per-position values in display order -> the same values in the task's response order."""
    out: list = [None] * len(display_order)
    for pos, idx in enumerate(display_order):
        out[idx] = values[pos]
    return out


def _check(sub: Submission, k: int) -> None:
    if sub.action == "skip":
        if not (sub.skip_reason or "").strip():
            raise SubmitError(422, "a skip needs a reason ('skip_reason')")
        return
    if sub.action != "rank":
        raise SubmitError(422, f"action must be 'rank' or 'skip', got {sub.action!r}")
    check_ranking(sub.ranks, sub.scores, sub.flags, k)


def check_ranking(
    ranks: list[int] | None, scores: list[int | None] | None, flags: list[list[str]] | None, k: int
) -> None:
    """SubmitError 422 naming what is wrong with a ranking of ``k`` responses (and its extras)."""
    if ranks is None or len(ranks) != k:
        n = "no" if ranks is None else len(ranks)
        raise SubmitError(422, f"'ranks' has {n} entries but the task has {k} responses")
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= k:
            raise SubmitError(
                422, f"ranks[{i}] is {r!r}: each rank must be an integer from 1 (best) to {k}, got {ranks}"
            )
    lo, hi = SCORE_RANGE
    if scores is not None:
        bad = [s for s in scores if s is not None and (isinstance(s, bool) or not isinstance(s, int))]
        if len(scores) != k or bad or any(s is not None and not lo <= s <= hi for s in scores):
            raise SubmitError(422, f"'scores' must be {k} entries, each null or an integer {lo}-{hi}")
    if flags is not None:
        if len(flags) != k or any(f not in FLAGS for fl in flags for f in fl):
            raise SubmitError(422, f"'flags' must be {k} lists of flags from {FLAGS}")


def _existing(s, submission_id: str, rater_id: int) -> Receipt | None:
    label = s.scalar(select(Label).where(Label.submission_id == submission_id))
    if label is None:
        return None
    if label.rater_id != rater_id:
        raise SubmitError(409, "this submission_id was already used by someone else; make a new one")
    return Receipt(label.id, label.task_id, label.kind, duplicate=True)


def record(db: Database, project_id: int, rater_id: int, sub: Submission) -> Receipt:
    """Store ``sub`` once; a repeat of a stored submission_id returns the stored receipt."""
    with db.read() as s:  # the common retry answered without taking the write lock
        found = _existing(s, sub.submission_id, rater_id)
    if found is not None:
        return found
    try:
        return retry_conflicts(lambda: _store(db, project_id, rater_id, sub))
    except IntegrityError:
        # the same submission raced itself (a retry sent before the first answer came back)
        with db.read() as s:
            found = _existing(s, sub.submission_id, rater_id)
        if found is None:
            raise SubmitError(409, f"task {sub.task_id} was already answered") from None
        return found


def _store(db: Database, project_id: int, rater_id: int, sub: Submission) -> Receipt:
    with db.write() as s:
        # again under the lock: a copy of this submission may have committed since the read
        found = _existing(s, sub.submission_id, rater_id)
        if found is not None:
            return found
        a = s.scalar(
            select(Assignment).where(Assignment.task_id == sub.task_id, Assignment.rater_id == rater_id)
        )
        if a is None or a.project_id != project_id:
            raise SubmitError(404, f"task {sub.task_id} is not assigned to you in this project")
        if a.status in ("submitted", "skipped"):
            raise SubmitError(409, f"task {sub.task_id} was already answered (with another submission_id)")
        task = s.get(Task, a.task_id)
        k = len(task.responses)
        _check(sub, k)
        if a.status in ("expired", "released"):
            # the lease ran out but the answer is still welcome if the task has room for it
            if not take_slot(s, task.id, task.is_gold, s.get(Project, project_id).overlap):
                raise SubmitError(
                    409, f"task {sub.task_id} was given to someone else after its lease ran out"
                )
        label = Label(
            submission_id=sub.submission_id,
            project_id=project_id,
            task_id=task.id,
            rater_id=rater_id,
            kind=sub.action,
            display_order=list(a.display_order),
            seconds=max(0.0, now() - a.assigned_at),
            elapsed_ms=sub.elapsed_ms,
        )
        if sub.action == "rank":
            label.ranks = to_task_order(dense_ranks(sub.ranks), a.display_order)
            if sub.scores is not None and any(x is not None for x in sub.scores):
                label.scores = to_task_order(sub.scores, a.display_order)
            if sub.flags is not None and any(sub.flags):
                label.flags = to_task_order([sorted(set(f)) for f in sub.flags], a.display_order)
            a.status = "submitted"
        else:
            label.skip_reason = sub.skip_reason.strip()
            a.status = "skipped"
            # a skip frees the slot: the task still needs `overlap` rankings from others
            s.execute(update(Task).where(Task.id == task.id).values(n_active=Task.n_active - 1))
        s.add(label)
        s.flush()
        if sub.action == "rank":  # version 1 of the ranking: revisions and corrections add more
            add_version(s, label, "submitted", s.get(Rater, rater_id).name)
        receipt = Receipt(label.id, task.id, sub.action, duplicate=False)
    return receipt
