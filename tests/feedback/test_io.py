"""Import of candidate sets and export in the project's ranking and pair formats."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.feedback import assign
from rlhf.feedback.auth import create_rater
from rlhf.feedback.db import Rater, Task
from rlhf.feedback.io import export_pairs, export_rankings, import_file, import_records, write_jsonl
from rlhf.feedback.projects import ProjectError, create_project
from rlhf.feedback.submit import Submission, record

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def _write(path, lines: list) -> str:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


def test_import_strings_chats_gold_and_twice_adds_nothing(db, tmp_path):
    create_project(db, "p")
    f = _write(
        tmp_path / "c.jsonl",
        [
            {"prompt": "2+2?", "responses": ["4", "5"], "id": "q1"},
            {"prompt": CHAT, "responses": ["Hello.", "Go away.", "Hi!"]},
            {"prompt": "gold", "responses": ["a", "b", "c"], "ranks": [1, 3, 3], "id": 7},
        ],
    )
    r = import_file(db, "p", f)
    assert (r.added, r.gold, r.already_present) == (3, 1, 0)
    assert import_file(db, "p", f).already_present == 3
    with db.read() as s:
        tasks = s.scalars(select(Task).order_by(Task.id)).all()
    assert [t.external_id for t in tasks][::2] == ["q1", "7"]
    assert tasks[1].external_id.startswith("sha256:") and tasks[1].prompt == CHAT
    assert tasks[2].is_gold and tasks[2].gold_ranks == [1, 2, 2]  # stored dense


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "c.jsonl:2: not valid JSON"),
        ("[1, 2]", "c.jsonl:2: expected a JSON object"),
        ({"responses": ["a", "b"]}, "c.jsonl:2: missing field 'prompt'"),
        (
            {"prompt": 3, "responses": ["a", "b"]},
            "c.jsonl:2: field 'prompt' must be a string or a list of chat",
        ),
        (
            {"prompt": [{"role": "robot", "content": "x"}], "responses": ["a", "b"]},
            "prompt[0].role is 'robot'",
        ),
        ({"prompt": "x", "responses": ["a"]}, "c.jsonl:2: field 'responses' must be a list of 2 to 26"),
        ({"prompt": "x", "responses": ["a", 5]}, "c.jsonl:2: field 'responses[1]' must be a string"),
        (
            {"prompt": "x", "responses": ["a", "b"], "ranks": [1]},
            "field 'ranks' has 1 entries but 'responses' has 2",
        ),
        ({"prompt": "x", "responses": ["a", "b"], "ranks": [0, 1]}, "ranks[0] must be an integer >= 1"),
        ({"prompt": "x", "responses": ["a", "b"], "id": ""}, "c.jsonl:2: field 'id' must be a non-empty"),
        (
            {"prompt": "x", "responses": ["a", "b", "c", "d"], "ranks": [1, 2, 3, 99]},
            "c.jsonl:2: ranks[3] is 99, but with 4 responses a rank goes from 1 (best) to 4",
        ),
        ({"prompt": "x", "responses": ["a", "b"], "ranks": ["1", "2"]}, "ranks[0] must be an integer >= 1"),
        ({"prompt": "x", "responses": ["a", "b"], "ranks": [True, 2]}, "ranks[0] must be an integer >= 1"),
        (
            {"prompt": "x", "responses": ["a", "b"], "rank": [1, 2]},
            "c.jsonl:2: unknown field 'rank' (did you mean 'ranks'?); the fields are prompt, responses",
        ),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(db, tmp_path, line, message):
    create_project(db, "p")
    f = _write(tmp_path / "c.jsonl", [{"prompt": "ok", "responses": ["a", "b"]}, line])
    with pytest.raises(DataError, match=re.escape(message)):
        import_file(db, "p", f)
    with db.read() as s:
        assert s.scalars(select(Task)).all() == []


def test_same_id_different_content_is_an_error_and_unknown_project_too(db, tmp_path):
    create_project(db, "p")
    import_records(db, "p", [("a:1", {"id": "q", "prompt": "x", "responses": ["a", "b"]})])
    with pytest.raises(DataError, match="b:1: id 'q' is already in project 'p' with a different"):
        import_records(db, "p", [("b:1", {"id": "q", "prompt": "x", "responses": ["a", "c"]})])
    with pytest.raises(ProjectError, match="no project named 'nope' \\(known projects: p"):
        import_records(db, "nope", [("b:1", {"prompt": "x", "responses": ["a", "c"]})])


def _label_all(db, project: str, raters: dict[str, object]) -> None:
    """Each rater answers every task with ``ranks_of(task responses)`` (in the task's order)."""
    with db.read() as s:
        ids = {n: s.scalar(select(Rater.id).where(Rater.name == n)) for n in raters}
    for name, ranks_of in raters.items():
        while (view := assign.next_task(db, 1, ids[name])) is not None:
            with db.read() as s:
                task = s.get(Task, view.task_id)
            in_task_order = ranks_of(task.responses)
            shown = [in_task_order[i] for i in view.display_order]
            record(db, 1, ids[name], Submission(f"{name}-{view.task_id}-sub", view.task_id, ranks=shown))


def test_export_rankings_is_the_ranking_format_and_pairs_carry_vote_fractions(db, tmp_path):
    create_project(db, "p", overlap=3, gold_fraction=0.0)
    import_records(
        db,
        "p",
        [
            ("t:1", {"prompt": CHAT, "responses": ["best", "mid", "worst"]}),
            ("t:2", {"prompt": "q2", "responses": ["x", "y", "x"]}),
        ],
    )
    for n in ("ann", "bob", "cy"):
        create_rater(db, n)
    _label_all(
        db,
        "p",
        {
            "ann": lambda r: [1, 2, 3],
            "bob": lambda r: [1, 2, 3],
            "cy": lambda r: [1, 3, 3] if r[0] == "best" else [2, 1, 2],  # a tie, and a dissent
        },
    )
    rankings = export_rankings(db, "p")
    assert len(rankings) == 6 and all(
        set(r) == {"prompt", "responses", "ranks", "annotator"} for r in rankings
    )
    assert rankings[0] == {
        "prompt": CHAT,
        "responses": ["best", "mid", "worst"],
        "ranks": [1, 2, 3],
        "annotator": "ann",
    }
    assert rankings[2]["ranks"] == [1, 2, 2]  # cy's tie, as equal ranks
    meta = export_rankings(db, "p", with_metadata=True)[0]
    assert (
        meta["task"].startswith("sha256:")
        and meta["gold"] is False
        and sorted(meta["display_order"]) == [0, 1, 2]
    )

    pairs, counts = export_pairs(db, "p")
    by = {(json.dumps(p["prompt"]), p["chosen"], p["rejected"]): p for p in pairs}
    chat = json.dumps(CHAT)
    assert by[(chat, "best", "mid")]["prob"] == 1.0 and by[(chat, "best", "mid")]["votes"] == 3
    # mid vs worst: ann, bob prefer mid; cy ties -> (2 + 0.5) / 3
    assert by[(chat, "mid", "worst")]["prob"] == pytest.approx(2.5 / 3, abs=1e-6)
    # task 2: x (0) vs y: ann, bob prefer x, cy prefers y -> 2/3; x vs x (identical text) left out
    assert by[('"q2"', "x", "y")]["prob"] == pytest.approx(2 / 3, abs=1e-6)
    assert counts.identical == 1 and counts.tasks == 2
    # y vs the second x: ann and bob prefer y (2 < 3), so does cy (1 < 2)
    assert by[('"q2"', "y", "x")]["prob"] == 1.0
    assert "weight" not in pairs[0]
    weighted, _ = export_pairs(db, "p", weight="agreement")
    assert {round(p["weight"], 4) for p in weighted} == {
        1.0,
        round(2 * 2.5 / 3 - 1, 4),
        round(2 * 2 / 3 - 1, 4),
    }
    assert export_pairs(db, "p", min_votes=4)[1].below_min_votes == 6

    # both files read back through the reward model's own record parser
    write_jsonl(rankings, tmp_path / "r.jsonl")
    write_jsonl(weighted, tmp_path / "pairs.jsonl")
    parsed = load_records(str(tmp_path / "r.jsonl"), "preference")
    assert [p.annotator for p in parsed][:3] == ["ann", "bob", "cy"]
    parsed_pairs = load_records(str(tmp_path / "pairs.jsonl"), "preference")
    assert len(parsed_pairs) == len(weighted) and parsed_pairs[0].weight == weighted[0]["weight"]
