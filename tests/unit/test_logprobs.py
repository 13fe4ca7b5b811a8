"""rlhf.losses.logprobs against hand-computed values: softmax over two tokens with logits 0 and ln 3
is (1/4, 3/4)."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from rlhf.losses.logprobs import gathered_logprobs, token_logprobs

LOGITS = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]], dtype=torch.float64)  # (1, 2, 2)


def test_token_logprobs_by_hand():
    tokens = torch.tensor([[1, 1]])
    assert_close(
        token_logprobs(LOGITS, tokens), torch.tensor([[math.log(0.75), math.log(0.25)]], dtype=torch.float64)
    )


def test_temperature_divides_the_logits():
    """T = 2: logits 0 and ln 3 / 2, softmax (1, sqrt 3) / (1 + sqrt 3)."""
    s3 = math.sqrt(3.0)
    out = token_logprobs(LOGITS, torch.tensor([[1, 0]]), temperature=2.0)
    assert_close(out, torch.tensor([[math.log(s3 / (1 + s3)), math.log(s3 / (1 + s3))]], dtype=torch.float64))


def test_gathered_reads_several_tokens_a_position_and_bf16_in_float32():
    both = gathered_logprobs(LOGITS, torch.tensor([[[0, 1], [0, 1]]]))
    assert_close(both.exp(), torch.tensor([[[0.25, 0.75], [0.75, 0.25]]], dtype=torch.float64))
    assert token_logprobs(LOGITS.bfloat16(), torch.tensor([[1, 1]])).dtype == torch.float32
