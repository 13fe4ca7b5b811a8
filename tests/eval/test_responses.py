"""rlhf.eval.responses (what sampled responses look like, best-of-n's pick) and rlhf.eval.nll's
text examples, against hand-counted values."""

import pytest

from rlhf.eval.nll import text_examples
from rlhf.eval.responses import mean_words, no_eos_share, pick_best, response_stats
from rlhf.models.tiny import train_tokenizer
from rlhf.rollout.generate import Generation


def _gen(text: str, n_tokens: int, finished: bool) -> Generation:
    return Generation([1], list(range(n_tokens)), text, finished)


def test_response_stats_by_hand():
    gens = [_gen("a b a b", 4, True), _gen("c", 2, False), _gen("c c", 3, True)]
    assert no_eos_share(gens) == pytest.approx(1 / 3)
    assert mean_words([g.text for g in gens]) == pytest.approx(7 / 3)
    stats = response_stats(gens)
    assert stats["length"] == 3.0  # (4 + 2 + 3) / 3 tokens
    assert stats["distinct_1"] == pytest.approx(3 / 7)  # a, b, c among 7 words
    assert stats["distinct_2"] == pytest.approx(3 / 4)  # (a b) (b a) (a b) (c c): 3 distinct
    assert stats["repeated_bigrams"] == pytest.approx((1 / 3 + 0 + 0) / 3)


def test_pick_best_takes_the_first_of_equals():
    assert pick_best([[0.1, 0.5, 0.5], [2.0, -1.0], [0.0]]) == [1, 0, 0]


def test_text_examples_are_labelled_from_the_start_and_too_long_ones_left_out():
    tok = train_tokenizer(["some held out text about cats and dogs"] * 20, 300)
    short, long_ = "cats and dogs", "some held out text about cats and dogs"
    assert len(tok(short)["input_ids"]) + 1 <= 6 < len(tok(long_)["input_ids"]) + 1  # + EOS
    examples = text_examples(tok, [short, long_], 6)
    assert len(examples) == 1
    assert examples[0]["labels"] == examples[0]["input_ids"]  # no prompt: nothing IGNOREd
    assert tok.decode(examples[0]["input_ids"], skip_special_tokens=True) == short
