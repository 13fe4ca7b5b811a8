"""Preference data with chat-message responses (TRL's conversational format, UltraFeedback-
binarized, chat rankings) read as the plain formats, and DatasetDict splits named after the path."""

from __future__ import annotations

import json

import pytest

from rlhf.data.readers import DataError
from rlhf.data.records import Pair, Ranking, load_records


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


SYSTEM = {"role": "system", "content": "Be brief."}


def jsonl(tmp_path, *records) -> str:
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def error_of(path: str, kind: str) -> str:
    with pytest.raises(DataError) as err:
        load_records(path, kind)
    return str(err.value)


def ultrafeedback_row(i: int) -> dict:
    q = f"What is {i} + 1?"
    return {
        "prompt": q,
        "prompt_id": f"id{i}",
        "chosen": [user(q), bot(f"{i + 1}.")],
        "rejected": [user(q), bot("No idea.")],
        "messages": [user(q), bot(f"{i + 1}.")],
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }


def test_trl_conversational_pairs_with_and_without_a_prompt(tmp_path):
    path = jsonl(
        tmp_path,
        {"chosen": [SYSTEM, user("Hi?"), bot("Hello.")], "rejected": [SYSTEM, user("Hi?"), bot("Go.")]},
        {"prompt": [user("Hi?")], "chosen": [bot("Hello.")], "rejected": [bot("Go.")]},
        {
            "prompt": [user("Hi?")],
            "chosen": [user("Hi?"), bot("Hello.")],
            "rejected": [user("Hi?"), bot("Go.")],
        },
        {
            "chosen": [user("a"), bot("b"), user("c"), bot("d")],
            "rejected": [user("a"), bot("b"), user("c"), bot("e")],
        },
    )
    assert load_records(path, "preference") == [
        Pair([SYSTEM, user("Hi?")], "Hello.", "Go."),
        Pair([user("Hi?")], "Hello.", "Go."),
        Pair([user("Hi?")], "Hello.", "Go."),
        Pair([user("a"), bot("b"), user("c")], "d", "e"),
    ]


def test_ultrafeedback_binarized_from_a_named_datasetdict_split(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {
            "train_prefs": datasets.Dataset.from_list([ultrafeedback_row(i) for i in range(3)]),
            "test_prefs": datasets.Dataset.from_list([ultrafeedback_row(7)]),
        }
    )
    root = tmp_path / "uf"
    dd.save_to_disk(str(root))
    pairs = load_records(f"{root}:train_prefs", "pair")
    assert pairs == [Pair([user(f"What is {i} + 1?")], f"{i + 1}.", "No idea.") for i in range(3)]
    assert load_records(f"{root}:test_prefs", "preference") == [
        Pair([user("What is 7 + 1?")], "8.", "No idea.")
    ]
    msg = error_of(str(root), "pair")
    assert "without a 'train' split" in msg and "['train_prefs', 'test_prefs']" in msg
    assert f"{root}:train_prefs" in msg
    msg = error_of(f"{root}:valid", "pair")
    assert "has no split 'valid'" in msg and "train_prefs" in msg
    path = jsonl(tmp_path, ultrafeedback_row(1))
    assert "only a saved DatasetDict directory has splits" in error_of(f"{path}:train", "pair")


def test_rankings_whose_responses_are_assistant_messages(tmp_path):
    path = jsonl(
        tmp_path,
        {"prompt": [user("Name a colour.")], "responses": [bot("red"), bot("cat")], "ranks": [1, 2]},
        {"responses": [[user("Hi?"), bot("Hello.")], [user("Hi?"), bot("Go.")]], "ranks": [2, 1]},
        {"prompt": "Hi?", "responses": [[user("Hi?"), bot("Hello.")], "Go."], "ranks": [1, 2]},
    )
    assert load_records(path, "ranking") == [
        Ranking([user("Name a colour.")], ["red", "cat"], [1, 2]),
        Ranking([user("Hi?")], ["Hello.", "Go."], [2, 1]),
        Ranking([user("Hi?")], ["Hello.", "Go."], [1, 2]),
    ]


@pytest.mark.parametrize(
    "record, message",
    [
        (
            {"chosen": [user("Hi?"), bot("Hello.")], "rejected": [user("Hi?")]},
            "field 'rejected' must end with an assistant message (the response); its last message is from "
            "'user'",
        ),
        (
            {"chosen": [user("Hi?"), bot("Hello.")], "rejected": [user("Hey?"), bot("Go.")]},
            "fields 'chosen' and 'rejected' hold different prompts (their messages differ at message 0)",
        ),
        (
            {"prompt": "Hello?", "chosen": [user("Hi?"), bot("a")], "rejected": [user("Hi?"), bot("b")]},
            "field 'prompt' is not the first user message of the conversation in 'chosen'",
        ),
        (
            {
                "prompt": [user("Hey?")],
                "chosen": [user("Hi?"), bot("a")],
                "rejected": [user("Hi?"), bot("b")],
            },
            "field 'prompt' differs from the conversation in 'chosen' at message 0",
        ),
        (
            {"chosen": [bot("a")], "rejected": [bot("b")]},
            "no 'prompt', and field 'chosen' holds no messages before its final assistant turn",
        ),
        ({"chosen": [user("Hi?"), {"role": "assistant"}], "rejected": "b"}, "chosen[1] must be an object"),
        (
            {"prompt": "p", "responses": [bot("a"), [user("x"), bot("b")]], "ranks": [1, 2]},
            "fields 'responses[0]' and 'responses[1]' hold different prompts",
        ),
    ],
)
def test_malformed_conversations_name_file_line_and_field(tmp_path, record, message):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    msg = error_of(jsonl(tmp_path, good, record), "preference")
    assert msg.startswith(f"{tmp_path / 'prefs.jsonl'}:2: ") and message in msg, msg


def test_a_demonstration_with_messages_beside_a_prompt_reads_the_messages(tmp_path):
    from rlhf.data.records import Demonstration

    row = ultrafeedback_row(2)
    path = jsonl(tmp_path, {k: row[k] for k in ("prompt", "prompt_id", "messages")})
    assert load_records(path, "demonstration") == [Demonstration([user("What is 2 + 1?")], "3.")]
    # a table whose rows hold either form has null in the other's columns
    path = jsonl(tmp_path, {"prompt": "a", "completion": "b", "messages": None})
    assert load_records(path, "demonstration") == [Demonstration("a", "b")]
