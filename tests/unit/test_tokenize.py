"""rlhf.data.tokenize: prompt masking, EOS, chat templates and the truncation rule.

The truncation arithmetic is checked with ``WordTokenizer``, whose ids can be read off the text
("w12" is token 12, one token per word), so expected sequences are written out literally. Chat
templates and EOS handling are checked with a real tiny BPE tokenizer.
"""

from __future__ import annotations

import pytest

from rlhf.data.rankings import to_group
from rlhf.data.readers import DataError
from rlhf.data.records import Demonstration, Pair, Ranking
from rlhf.data.tokenize import (
    TruncationStats,
    encode_prompt,
    encode_response,
    fit_prompt,
    render_prompt,
    tokenize_demonstrations,
    tokenize_groups,
)

BOS, EOS = 2, 1


class WordTokenizer:
    """Word "wN" is token N; a BOS is added when ``add_special_tokens`` (like Llama's)."""

    eos_token_id = EOS
    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [int(w[1:]) for w in text.split()]
        return {"input_ids": ([BOS] if add_special_tokens else []) + ids}


def demo(prompt: str, completion: str) -> Demonstration:
    return Demonstration(prompt, completion)


# ---------------------------------------------------------------- masking and EOS


def test_prompt_is_masked_and_eos_closes_the_response():
    examples, stats = tokenize_demonstrations(
        [demo("w10 w11 w12", "w20 w21")], WordTokenizer(), max_length=16
    )
    assert examples == [
        {
            "input_ids": [BOS, 10, 11, 12, 20, 21, EOS],
            "labels": [-100, -100, -100, -100, 20, 21, EOS],
        }
    ]
    assert (stats.records, stats.truncated, stats.dropped) == (1, 0, 0)


def test_string_prompt_gets_the_tokenizers_special_tokens_and_response_none():
    tok = WordTokenizer()
    assert encode_prompt(tok, "w10 w11") == [BOS, 10, 11]
    assert encode_response(tok, "w20 w21") == [20, 21, EOS]
    assert encode_response(tok, "") == [EOS]
    assert encode_response(tok, "w20 w1") == [20, EOS]  # already ends with EOS: not doubled


def test_chat_prompt_without_a_template_is_an_error():
    with pytest.raises(DataError, match="no chat template"):
        encode_prompt(WordTokenizer(), [{"role": "user", "content": "w10"}])


def test_real_tokenizer_eos_exactly_once(tiny_tokenizer):
    tok = tiny_tokenizer
    eos = tok.eos_token_id
    response = tok("on the mat.", add_special_tokens=False)["input_ids"]
    assert eos not in response
    assert encode_response(tok, "on the mat.") == response + [eos]
    (ex,), _ = tokenize_demonstrations([demo("the cat sat", "on the mat.")], tok, max_length=64)
    prompt = tok("the cat sat")["input_ids"]
    assert ex["input_ids"] == prompt + response + [eos]
    assert ex["labels"] == [-100] * len(prompt) + response + [eos]
    assert ex["input_ids"].count(eos) == 1


def test_completion_already_ending_in_eos_is_not_given_a_second(tiny_tokenizer):
    tok = tiny_tokenizer
    eos = tok.eos_token_id
    ids = encode_response(tok, "on the mat." + tok.eos_token)
    assert ids == tok("on the mat.", add_special_tokens=False)["input_ids"] + [eos]
    assert ids.count(eos) == 1


def test_string_prompt_is_used_as_it_is(tiny_tokenizer):
    tok = tiny_tokenizer
    text = "hello there, what is two plus two?"
    assert render_prompt(tok, text) == text
    assert encode_prompt(tok, text) == tok(text)["input_ids"]
    assert tok.convert_tokens_to_ids("<|assistant|>") not in encode_prompt(tok, text)


def test_chat_prompt_goes_through_the_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer
    messages = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello there"}]
    text = render_prompt(tok, messages)
    assert text == "<|system|>\nbe kind<|end|>\n<|user|>\nhello there<|end|>\n<|assistant|>\n"
    ids = encode_prompt(tok, messages)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    special = tok.convert_tokens_to_ids(["<|system|>", "<|user|>", "<|assistant|>"])
    assert [i for i in ids if i in special] == special
    assert ids.count(tok.eos_token_id) == 2  # each finished turn closes with <|end|>

    (ex,), _ = tokenize_demonstrations([Demonstration(messages, "hi.")], tok, max_length=128)
    n = len(ids)
    assert ex["input_ids"][:n] == ids
    assert ex["labels"][:n] == [-100] * n
    assert ex["labels"][n:] == ex["input_ids"][n:] == encode_response(tok, "hi.")
    assert "kl_weights" not in ex  # kl_weight 1, the default: nothing to carry

    (held,), _ = tokenize_demonstrations([Demonstration(messages, "hi.", 0.25)], tok, max_length=128)
    assert held["kl_weights"] == [0.25] * len(ex["input_ids"]) and held["input_ids"] == ex["input_ids"]


# ---------------------------------------------------------------- truncation rule


# prompt [BOS, 10, 11, 12, 13, 14] (6 tokens), response [20, 21, EOS] (3 tokens)
PROMPT, COMPLETION = "w10 w11 w12 w13 w14", "w20 w21"


@pytest.mark.parametrize(
    "max_length, max_prompt_length, prompt, truncated",
    [
        (9, 0, [BOS, 10, 11, 12, 13, 14], 0),  # fits exactly
        (100, 0, [BOS, 10, 11, 12, 13, 14], 0),
        (7, 0, [11, 12, 13, 14], 1),  # rule 2: cut from the left to fit, keeping the last tokens
        (4, 0, [14], 1),  # room for exactly MIN_PROMPT_TOKENS = 1
        (100, 3, [12, 13, 14], 1),  # rule 1: max_prompt_length
        (100, 6, [BOS, 10, 11, 12, 13, 14], 0),
        (5, 3, [13, 14], 1),  # rule 1, then rule 2
    ],
)
def test_truncation_rule_keeps_the_end_of_the_prompt(max_length, max_prompt_length, prompt, truncated):
    examples, stats = tokenize_demonstrations(
        [demo(PROMPT, COMPLETION)], WordTokenizer(), max_length, max_prompt_length
    )
    assert examples == [{"input_ids": prompt + [20, 21, EOS], "labels": [-100] * len(prompt) + [20, 21, EOS]}]
    assert len(examples[0]["input_ids"]) <= max_length
    assert (stats.records, stats.truncated, stats.dropped) == (1, truncated, 0)


@pytest.mark.parametrize("max_length", [3, 2, 1])
def test_record_is_dropped_when_the_response_leaves_no_room(max_length):
    # response + EOS is 3 tokens: with max_length 3 no prompt token fits, below it the response itself
    examples, stats = tokenize_demonstrations([demo(PROMPT, COMPLETION)], WordTokenizer(), max_length)
    assert examples == []
    assert (stats.records, stats.truncated, stats.dropped) == (1, 0, 1)


def test_truncation_stats_count_over_records():
    records = [
        demo("w10 w11", "w20"),  # 3 + 2 = 5: fits
        demo("w10 w11 w12 w13 w14 w15", "w20"),  # 7 + 2: prompt cut to 4
        demo("w10", "w20 w21 w22 w23 w24 w25"),  # response + EOS = 7 > 6: dropped
        demo("w10 w11 w12 w13", "w20 w21 w22"),  # 5 + 4: prompt cut to 2
    ]
    examples, stats = tokenize_demonstrations(records, WordTokenizer(), max_length=6)
    assert [e["input_ids"] for e in examples] == [
        [BOS, 10, 11, 20, EOS],
        [12, 13, 14, 15, 20, EOS],
        [12, 13, 20, 21, 22, EOS],
    ]
    assert (stats.records, stats.truncated, stats.dropped) == (4, 2, 1)
    assert stats.summary() == "4 records, 2 prompts truncated, 1 dropped as too long"


def test_fit_prompt_directly():
    stats = TruncationStats()
    assert fit_prompt([1, 2, 3, 4], longest_response=2, max_length=4, max_prompt_length=0, stats=stats) == [
        3,
        4,
    ]
    assert fit_prompt([1, 2, 3, 4], 2, 10, 0, stats) == [1, 2, 3, 4]
    assert fit_prompt([1, 2, 3, 4], 4, 4, 0, stats) is None
    assert (stats.records, stats.truncated, stats.dropped) == (3, 1, 1)


# ---------------------------------------------------------------- preference groups


def test_tokenize_groups_shares_the_prompt_and_fits_the_longest_response():
    groups = [
        to_group(Ranking("w10 w11 w12", ["w20", "w21 w22 w23", "w24"], [2, 1, 3], weight=0.5)),
        to_group(Pair("w13", "w25", "w26", margin=1.0)),
        to_group(Ranking("w14", ["w27", "w28"], [1, 1])),  # all tied: no comparison, dropped
        to_group(Ranking("w15", ["w29", "w30 w31 w32 w33 w34 w35"], [1, 2])),  # longest is 7: dropped
    ]
    out, stats = tokenize_groups(groups, WordTokenizer(), max_length=6)
    assert out == [
        {
            # longest response is 4 tokens (w21 w22 w23 EOS): the prompt is cut to its last 2
            "prompt_ids": [11, 12],
            "response_ids": [[20, EOS], [21, 22, 23, EOS], [24, EOS]],
            "better": [0, 1, 1],
            "worse": [2, 0, 2],
            "margins": [0.0, 0.0, 0.0],
            "weight": 0.5,
        },
        {
            "prompt_ids": [BOS, 13],
            "response_ids": [[25, EOS], [26, EOS]],
            "better": [0],
            "worse": [1],
            "margins": [1.0],
            "weight": 1.0,
        },
    ]
    assert (stats.records, stats.truncated, stats.dropped, stats.all_tied) == (4, 1, 1, 1)
