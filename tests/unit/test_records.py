"""rlhf.data.readers / records: the three file formats, and errors naming file, line and field."""

from __future__ import annotations

import json

import pytest

from rlhf.data.readers import DataError, read_records
from rlhf.data.records import (
    Demonstration,
    Pair,
    PromptRecord,
    Ranking,
    load_records,
    parse_pair,
    parse_preference,
    split_common_prefix,
)

# every row names every column (null where absent): parquet and `datasets` take the columns of
# the first row
RANKINGS = [
    {
        "prompt": "Name a colour.",
        "responses": ["red", "blue", "cat"],
        "ranks": [1, 1, 3],
        "annotator": "ann",
        "weight": None,
    },
    {
        "prompt": "Count to two.",
        "responses": ["one two", "two"],
        "ranks": [1, 2],
        "annotator": None,
        "weight": 0.5,
    },
]
EXPECTED_RANKINGS = [
    Ranking("Name a colour.", ["red", "blue", "cat"], [1, 1, 3], "ann", 1.0),
    Ranking("Count to two.", ["one two", "two"], [1, 2], None, 0.5),
]
CHAT_DEMOS = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."},
        ]
    },
    {"messages": [{"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Bye."}]},
]
EXPECTED_CHAT_DEMOS = [
    Demonstration([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], "Hello."),
    Demonstration([{"role": "user", "content": "Bye?"}], "Bye."),
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_lines(tmp_path, *lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def write_parquet(path, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_dataset(path, records):
    import datasets

    datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


def error_of(path, kind) -> str:
    with pytest.raises(DataError) as err:
        load_records(str(path), kind)
    return str(err.value)


def error_at_line_2(tmp_path, kind, good, bad) -> str:
    """The error of a file whose line 1 is ``good`` and line 2 ``bad``; it must name line 2."""
    path = write_lines(tmp_path, good, bad)
    msg = error_of(path, kind)
    assert f"{path}:2" in msg
    return msg


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "records, kind, expected",
    [
        (RANKINGS, "ranking", EXPECTED_RANKINGS),
        (CHAT_DEMOS, "demonstration", EXPECTED_CHAT_DEMOS),
        (
            [
                {"prompt": "p1", "chosen": "a", "rejected": "b", "margin": 1.5, "weight": None},
                {"prompt": "p2", "chosen": "c", "rejected": "d", "margin": None, "weight": 3},
            ],
            "pair",
            [Pair("p1", "a", "b", 1.5, 1.0), Pair("p2", "c", "d", 0.0, 3.0)],
        ),
    ],
    ids=["ranking", "chat-demonstration", "pair"],
)
def test_jsonl_parquet_and_datasets_give_the_same_records(tmp_path, records, kind, expected):
    jsonl = write_jsonl(tmp_path / "d.jsonl", records)
    parquet = write_parquet(tmp_path / "d.parquet", records)
    saved = write_dataset(tmp_path / "d_ds", records)
    for path in (jsonl, parquet, saved):
        assert load_records(str(path), kind) == expected, path


def test_locations_name_file_and_line_or_row(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps(RANKINGS[0]) + "\n\n" + json.dumps(RANKINGS[1]) + "\n")
    assert [w for w, _ in read_records(jsonl)] == [f"{jsonl}:1", f"{jsonl}:3"]  # blank line 2 skipped
    parquet = write_parquet(tmp_path / "d.parquet", RANKINGS)
    assert [w for w, _ in read_records(parquet)] == [f"{parquet} row 0", f"{parquet} row 1"]


def test_datasetdict_uses_its_train_split(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(RANKINGS), "test": datasets.Dataset.from_list(RANKINGS[:1])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_records(str(tmp_path / "dd"), "ranking") == EXPECTED_RANKINGS


def test_parquet_error_names_the_row(tmp_path):
    path = write_parquet(
        tmp_path / "d.parquet", [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": None}]
    )
    msg = error_of(path, "demonstration")
    assert f"{path} row 1" in msg and "'completion'" in msg


def test_prompt_records(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": "hi"}, {"prompt": [{"role": "user", "content": "yo"}]}]
    )
    assert load_records(str(path), "prompt") == [
        PromptRecord("hi"),
        PromptRecord([{"role": "user", "content": "yo"}]),
    ]


# ---------------------------------------------------------------- file-level errors


def test_truncated_json_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "a", "completion": "b"}', '{"prompt": "a", "completion": "b"')
    msg = error_of(path, "demonstration")
    assert f"{path}:2" in msg and "not valid JSON" in msg


def test_non_object_line(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "a", "completion": "b"}', "[1, 2]")
    msg = error_of(path, "demonstration")
    assert f"{path}:2" in msg and "expected a JSON object, got list" in msg


def test_empty_file(tmp_path):
    for text in ("", "\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(text)
        with pytest.raises(DataError, match="holds no records") as err:
            load_records(str(path), "demonstration", what="data.train")
        assert str(path) in str(err.value) and "data.train" in str(err.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="data.eval: .*nope.jsonl does not exist"):
        load_records(str(tmp_path / "nope.jsonl"), "pair", what="data.eval")
    with pytest.raises(DataError, match="no data file given"):
        read_records("", what="data.train")
    (tmp_path / "d.csv").write_text("prompt,completion\na,b\n")
    with pytest.raises(DataError, match="unknown format"):
        read_records(tmp_path / "d.csv")
    (tmp_path / "notads").mkdir()
    with pytest.raises(DataError, match="not a saved `datasets` directory"):
        read_records(tmp_path / "notads")


# ---------------------------------------------------------------- record-level errors


def test_missing_field_names_file_line_and_field(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "a", "completion": "b"}', "", '{"prompt": "c"}')
    msg = error_of(path, "demonstration")
    assert f"{path}:3" in msg and "missing field 'completion'" in msg


def test_wrong_field_type(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "a", "completion": 5}')
    assert "field 'completion' must be a string, got int" in error_of(path, "demonstration")
    path = write_lines(tmp_path, '{"prompt": 5, "completion": "b"}')
    assert "field 'prompt' must be a string or a list of chat messages" in error_of(path, "demonstration")


def test_responses_and_ranks_length_mismatch(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "p", "responses": ["a", "b", "c"], "ranks": [1, 2]}')
    msg = error_of(path, "ranking")
    assert f"{path}:1" in msg and "field 'ranks' has 2 entries but 'responses' has 3" in msg


def test_too_few_responses(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "p", "responses": ["a"], "ranks": [1]}')
    assert "'responses' must be a list of at least 2 strings" in error_of(path, "ranking")


@pytest.mark.parametrize(
    "ranks, index", [("[1, 0]", 1), ("[1.5, 2]", 0), ('[1, "2"]', 1), ("[true, 2]", 0), ("[-1, 1]", 0)]
)
def test_bad_rank_values(tmp_path, ranks, index):
    good = '{"prompt": "p", "responses": ["a", "b"], "ranks": [1, 2]}'
    bad = f'{{"prompt": "p", "responses": ["a", "b"], "ranks": {ranks}}}'
    assert f"ranks[{index}] must be an integer >= 1" in error_at_line_2(tmp_path, "ranking", good, bad)


def test_bad_weight_and_margin(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "p", "responses": ["a", "b"], "ranks": [1, 2], "weight": -1}')
    assert "field 'weight' must be >= 0" in error_of(path, "ranking")
    path = write_lines(tmp_path, '{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}')
    assert "field 'margin' must be a number" in error_of(path, "pair")


def test_demonstration_kl_weight(tmp_path):
    """Optional, 1 by default, on both demonstration forms."""
    messages = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    path = write_lines(
        tmp_path,
        '{"prompt": "a", "completion": "b"}',
        '{"prompt": "a", "completion": "b", "kl_weight": 0}',
        json.dumps({"messages": messages, "kl_weight": 2.5}),
    )
    assert [d.kl_weight for d in load_records(str(path), "demonstration")] == [1.0, 0.0, 2.5]


@pytest.mark.parametrize(
    "bad, says",
    [("-1", "must be a finite number >= 0, got -1"), ("NaN", "must be a finite number >= 0, got nan"),
     ("Infinity", "must be a finite number >= 0, got inf"), ('"none"', "must be a number")],
)  # fmt: skip
def test_bad_demonstration_kl_weight(tmp_path, bad, says):
    good = '{"prompt": "a", "completion": "b"}'
    bad = f'{{"prompt": "a", "completion": "b", "kl_weight": {bad}}}'
    assert f"field 'kl_weight' {says}" in error_at_line_2(tmp_path, "demonstration", good, bad)


def test_chat_messages_demonstration_errors(tmp_path):
    path = write_lines(tmp_path, '{"messages": [{"role": "user", "content": "hi"}]}')
    assert "'messages' must end with an assistant message" in error_of(path, "demonstration")
    path = write_lines(tmp_path, '{"messages": [{"role": "assistant", "content": "hi"}]}')
    assert "'messages' must end with an assistant message" in error_of(path, "demonstration")
    path = write_lines(tmp_path, '{"messages": []}')
    assert "'messages' must be a non-empty list" in error_of(path, "demonstration")


def test_chat_prompt_validation(tmp_path):
    path = write_lines(
        tmp_path,
        '{"prompt": [{"role": "user", "content": "a"}], "completion": "b"}',
        '{"prompt": [{"role": "user", "content": "a"}, {"role": "bot", "content": "x"}], "completion": "b"}',
    )
    msg = error_of(path, "demonstration")
    assert f"{path}:2" in msg and "prompt[1].role is 'bot'" in msg
    path = write_lines(tmp_path, '{"prompt": [{"role": "user"}], "completion": "b"}')
    assert "prompt[0] must be an object with 'role' and 'content'" in error_of(path, "demonstration")
    path = write_lines(tmp_path, '{"prompt": [{"role": "user", "content": 3}], "completion": "b"}')
    assert "field 'prompt[0].content' must be a string" in error_of(path, "demonstration")


# ---------------------------------------------------------------- pairs


def test_hh_pair_without_prompt_splits_at_the_last_assistant(tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: hello there"
    rejected = "\n\nHuman: hi\n\nAssistant: go away"
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": rejected}])
    assert load_records(str(path), "pair") == [
        Pair("\n\nHuman: hi\n\nAssistant:", " hello there", " go away", 0.0, 1.0)
    ]


def test_hh_multi_turn_uses_the_last_shared_assistant():
    shared = "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: help?\n\nAssistant:"
    prompt, c, r = split_common_prefix(shared + " sure thing", shared + " sorry no")
    assert (prompt, c, r) == (shared, " sure thing", " sorry no")
    # responses that share a first word still split at "Assistant:", not inside the response
    prompt, c, r = split_common_prefix(shared + " help yourself", shared + " helping now")
    assert (prompt, c, r) == (shared, " help yourself", " helping now")


def test_pair_sharing_a_partial_word_backs_off_to_whitespace():
    assert split_common_prefix("Q: the cat sat", "Q: the car sat") == ("Q: the ", "cat sat", "car sat")
    assert split_common_prefix("Q: hi there", "Q: hi there friend") == ("Q: hi ", "there", "there friend")
    assert split_common_prefix("Q:\nyes", "Q:\nyet") == ("Q:\n", "yes", "yet")


def test_pair_errors(tmp_path):
    path = write_lines(tmp_path, '{"prompt": "p", "chosen": "same", "rejected": "same"}')
    msg = error_of(path, "pair")
    assert f"{path}:1" in msg and "'chosen' and 'rejected' are identical" in msg
    path = write_lines(tmp_path, '{"chosen": "H: a\\n\\nAssistant: x", "rejected": "H: a\\n\\nAssistant: x"}')
    assert "identical" in error_of(path, "pair")
    path = write_lines(tmp_path, '{"chosen": "yes", "rejected": "no"}')
    assert "share no common prefix" in error_of(path, "pair")
    path = write_lines(tmp_path, '{"prompt": "p", "chosen": "a"}')
    assert "missing field 'rejected'" in error_of(path, "pair")


def test_preference_tells_rankings_from_pairs():
    assert parse_preference({"prompt": "p", "responses": ["a", "b"], "ranks": [2, 1]}, "f:1") == Ranking(
        "p", ["a", "b"], [2, 1]
    )
    assert parse_preference({"prompt": "p", "chosen": "a", "rejected": "b", "weight": 2}, "f:2") == Pair(
        "p", "a", "b", 0.0, 2.0
    )
    with pytest.raises(DataError, match="f:3: neither a ranking"):
        parse_preference({"prompt": "p", "completion": "a"}, "f:3")
    assert parse_pair({"prompt": None, "chosen": "x: a", "rejected": "x: b"}, "f:4").prompt == "x: "
