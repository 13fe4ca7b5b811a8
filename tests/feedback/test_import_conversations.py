"""`rlhf label import` reads candidate sets whose responses are assistant messages (or whole
conversations) as the ranking format does: the prompt is the shared messages, each response
its final assistant turn."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from rlhf.data.readers import DataError
from rlhf.feedback.db import Task
from rlhf.feedback.io import import_file
from rlhf.feedback.projects import create_project

USER = {"role": "user", "content": "Hi?"}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_import_candidate_sets_of_assistant_messages(db, tmp_path):
    create_project(db, "p")
    f = tmp_path / "c.jsonl"
    lines = [
        {"prompt": [USER], "responses": [bot("Hello."), bot("Go away.")], "id": "a"},
        {"responses": [[USER, bot("Hello.")], [USER, bot("Hi!")]], "ranks": [2, 1], "id": "b"},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = import_file(db, "p", str(f))
    assert (result.added, result.gold) == (2, 1)
    with db.read() as s:
        tasks = s.scalars(select(Task).order_by(Task.id)).all()
    assert [(t.prompt, t.responses, t.gold_ranks) for t in tasks] == [
        ([USER], ["Hello.", "Go away."], None),
        ([USER], ["Hello.", "Hi!"], [2, 1]),
    ]


def test_responses_answering_different_prompts_are_refused(db, tmp_path):
    create_project(db, "p")
    f = tmp_path / "c.jsonl"
    other = {"role": "user", "content": "Bye?"}
    f.write_text(json.dumps({"responses": [[USER, bot("a")], [other, bot("b")]]}) + "\n")
    with pytest.raises(
        DataError, match="c.jsonl:1: fields 'responses\\[0\\]' and 'responses\\[1\\]' hold different"
    ):
        import_file(db, "p", str(f))
