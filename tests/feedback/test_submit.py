"""Submissions: stored once however often they are sent, in the task's order, with ties; bad
submissions refused with a message naming what is wrong."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from rlhf.feedback import assign
from rlhf.feedback.auth import create_rater
from rlhf.feedback.db import Label, Rater
from rlhf.feedback.submit import Submission, SubmitError, dense_ranks, record, to_task_order


def _rater(db, name: str) -> int:
    create_rater(db, name)
    with db.read() as s:
        return s.scalar(select(Rater.id).where(Rater.name == name))


def _labels(db) -> list[Label]:
    with db.read() as s:
        return list(s.scalars(select(Label)).all())


def test_dense_ranks_and_display_mapping():
    assert dense_ranks([1, 3, 3, 7]) == [1, 2, 2, 3]
    assert dense_ranks([2, 2]) == [1, 1]
    # shown: position 0 is response 2, position 1 is response 0, position 2 is response 1
    assert to_task_order(["x", "y", "z"], [2, 0, 1]) == ["y", "z", "x"]


def test_ranks_are_stored_in_task_order_with_ties(db, project):
    rid = _rater(db, "a")
    view = assign.next_task(db, 1, rid)
    # the rater puts the card at display position 2 first, positions 0 and 1 tied second, 3 last
    shown_ranks = [2, 2, 1, 4]
    sub = Submission(
        "sub-000001",
        view.task_id,
        ranks=shown_ranks,
        scores=[None, 5, 7, 1],
        flags=[["harmful"], [], [], ["off_topic", "factual_error"]],
    )
    record(db, 1, rid, sub)
    (label,) = _labels(db)
    expected = [0] * 4
    for pos, idx in enumerate(view.display_order):
        expected[idx] = dense_ranks(shown_ranks)[pos]
    assert label.ranks == expected and sorted(label.ranks) == [1, 2, 2, 3]
    assert label.display_order == view.display_order
    assert label.scores == to_task_order([None, 5, 7, 1], view.display_order)
    assert label.flags[view.display_order[3]] == ["factual_error", "off_topic"]


def test_a_retried_submission_is_stored_once(db, project):
    rid = _rater(db, "a")
    view = assign.next_task(db, 1, rid)
    sub = Submission("retry-0001", view.task_id, ranks=[1, 2, 3, 4])
    first = record(db, 1, rid, sub)
    again = record(db, 1, rid, sub)
    assert not first.duplicate and again.duplicate and again.label_id == first.label_id
    assert len(_labels(db)) == 1


def test_concurrent_copies_of_one_submission_store_one_row(db, project):
    rid = _rater(db, "a")
    view = assign.next_task(db, 1, rid)
    sub = Submission("race-00001", view.task_id, ranks=[4, 3, 2, 1])
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda _: record(db, 1, rid, sub), range(8)))
    assert len({r.label_id for r in receipts}) == 1
    assert sum(not r.duplicate for r in receipts) == 1
    assert len(_labels(db)) == 1


def test_a_second_different_answer_is_refused(db, project):
    rid = _rater(db, "a")
    view = assign.next_task(db, 1, rid)
    record(db, 1, rid, Submission("first-0001", view.task_id, ranks=[1, 2, 3, 4]))
    with pytest.raises(SubmitError, match="already answered") as err:
        record(db, 1, rid, Submission("second-001", view.task_id, ranks=[4, 3, 2, 1]))
    assert err.value.status == 409
    assert len(_labels(db)) == 1


def test_someone_elses_submission_id_or_task_is_refused(db, project):
    a, b = _rater(db, "a"), _rater(db, "b")
    va = assign.next_task(db, 1, a)
    record(db, 1, a, Submission("shared-001", va.task_id, ranks=[1, 2, 3, 4]))
    with pytest.raises(SubmitError, match="someone else") as err:
        record(db, 1, b, Submission("shared-001", va.task_id, ranks=[1, 2, 3, 4]))
    assert err.value.status == 409
    other = va.task_id + 1  # not assigned to b
    with pytest.raises(SubmitError, match=f"task {other} is not assigned to you") as err:
        record(db, 1, b, Submission("b-own-0001", other, ranks=[1, 2, 3, 4]))
    assert err.value.status == 404


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ranks": [1, 2, 3]}, "'ranks' has 3 entries but the task has 4 responses"),
        ({"ranks": None}, "'ranks' has no entries"),
        ({"ranks": [0, 1, 2, 3]}, "ranks[0] is 0: each rank must be an integer from 1 (best) to 4"),
        ({"ranks": [1, 2, 3, 99]}, "ranks[3] is 99: each rank must be an integer from 1 (best) to 4"),
        ({"ranks": [1, True, 2, 3]}, "ranks[1] is True"),
        ({"ranks": [1, "2", 3, 4]}, "ranks[1] is '2'"),
        ({"ranks": [1, 2, 3, 4], "scores": [9, None, None, None]}, "'scores' must be 4 entries"),
        ({"ranks": [1, 2, 3, 4], "flags": [["rude"], [], [], []]}, "'flags' must be 4 lists"),
        ({"action": "skip", "skip_reason": "  "}, "a skip needs a reason"),
    ],
)
def test_bad_submissions_name_the_problem(db, project, kwargs, message):
    rid = _rater(db, "a")
    view = assign.next_task(db, 1, rid)
    with pytest.raises(SubmitError, match=re.escape(message)) as err:
        record(db, 1, rid, Submission("bad-000001", view.task_id, **kwargs))
    assert err.value.status == 422
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0
