"""The reference generation engine, log-probs of responses, and reward scoring."""

import pytest
import torch

from rlhf.eval.kl import sequence_logprobs
from rlhf.models.tiny import build_tiny_model, train_tokenizer
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams
from rlhf.rollout.reward_model import score_sequences

TEXTS = [f"question {i} answer {i * 7 % 10} and more words here" for i in range(200)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 300)


@pytest.fixture(scope="module")
def model(tok):
    return build_tiny_model(tok, "gpt2", "nano", seed=0).eval()


def test_greedy_batch_equals_one_prompt_at_a_time(model, tok):
    """Left padding in a batch must not change what each prompt generates."""
    prompts = ["question 1", "question 12 answer 4 and more", "q"]
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    batched = [g[0].response_ids for g in HFGenerateEngine(model, tok).generate(prompts, params)]
    single = [HFGenerateEngine(model, tok).generate([p], params)[0][0].response_ids for p in prompts]
    assert batched == single


def test_sampling_is_reproducible_and_n_per_prompt(model, tok):
    params = SamplingParams(max_new_tokens=6, n=3, seed=5)
    a = HFGenerateEngine(model, tok).generate(["question 3", "question 4"], params)
    b = HFGenerateEngine(model, tok).generate(["question 3", "question 4"], params)
    assert [len(g) for g in a] == [3, 3]
    assert [[g.response_ids for g in gs] for gs in a] == [[g.response_ids for g in gs] for gs in b]


def test_generation_stops_at_eos(tok):
    model = build_tiny_model(tok, "gpt2", "nano", seed=0).eval()
    calls = {"n": 0}

    def eos_on_third_token(module, inputs, output):
        # the third generated token (and every later one) is EOS
        calls["n"] += 1
        if calls["n"] >= 3:
            output = output.clone()
            output[:, -1, tok.eos_token_id] = 1e4
        return output

    model.lm_head.register_forward_hook(eos_on_third_token)
    gen = HFGenerateEngine(model, tok).generate(
        ["question 1"], SamplingParams(max_new_tokens=8, temperature=0.0)
    )[0][0]
    assert gen.finished
    assert len(gen.response_ids) == 3 and gen.response_ids[-1] == tok.eos_token_id
    assert tok.eos_token_id not in gen.response_ids[:-1]


def test_sequence_logprobs_independent_of_batch_padding(model, tok):
    prompts = [tok("question 1")["input_ids"], tok("question 12 answer 4 and more words")["input_ids"]]
    responses = [tok(" answer 7")["input_ids"], tok(" here")["input_ids"]]
    together = sequence_logprobs(model, prompts, responses, tok.pad_token_id)
    alone = torch.cat(
        [sequence_logprobs(model, [p], [r], tok.pad_token_id) for p, r in zip(prompts, responses)]
    )
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    # and equal to a manual sum of token log-probs
    ids = torch.tensor([prompts[0] + responses[0]])
    logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    manual = sum(logp[len(prompts[0]) + i - 1, t] for i, t in enumerate(responses[0]))
    torch.testing.assert_close(together[0], manual, rtol=1e-5, atol=1e-5)


def test_score_sequences_reads_last_token_regardless_of_padding(tok, tmp_path):
    from transformers import AutoModelForSequenceClassification

    build_tiny_model(tok, "gpt2", "nano", seed=0).save_pretrained(tmp_path)
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=1).eval()
    prompts = [tok("question 1")["input_ids"], tok("question 12 answer 4 and more words")["input_ids"]]
    responses = [
        tok(" answer 7")["input_ids"] + [tok.eos_token_id],
        tok(" here")["input_ids"] + [tok.eos_token_id],
    ]
    together = score_sequences(rm, prompts, responses, tok.pad_token_id)
    alone = torch.cat([score_sequences(rm, [p], [r], tok.pad_token_id) for p, r in zip(prompts, responses)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
