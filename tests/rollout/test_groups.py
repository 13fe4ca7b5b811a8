"""Shared-prompt groups: a prompt's n responses packed in one row give every response the logits,
values and reward-model score it gets in its own row."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from rlhf.config import ConfigError
from rlhf.models import shared_prompt
from rlhf.models.tiny import tiny_config, train_tokenizer
from rlhf.rollout.experience import TokenValueModel, pack_rollouts, response_logits, response_values
from rlhf.rollout.groups import pack_groups, packing_saves
from rlhf.rollout.reward_model import score_sequences

TEXTS = [f"question {i} answer {i * 7 % 10} and more words here" for i in range(200)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 300)


def build(tok, arch, attn, head):
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    extra = {"num_labels": 1} if head == "score" else {}
    cfg = tiny_config(arch, "nano", vocab_size=len(tok), **ids, **extra)
    torch.manual_seed(0)
    cls = AutoModelForSequenceClassification if head == "score" else AutoModelForCausalLM
    return cls.from_config(cfg, attn_implementation=attn).eval()


def rollout(tok):
    """Two groups of three: prompts of different lengths, responses of different lengths, one of
    only EOS, one with a padding token inside (the reward model's head skips it)."""
    eos, pad = tok.eos_token_id, tok.pad_token_id
    prompts = [[5, 6, 7]] * 3 + [[8, 9, 10, 11, 12]] * 3
    responses = [[20, 21, eos], [22], [23, 24, 25, 26, pad], [30, 31], [32, 33, 34, 35, 36, 37, eos], [eos]]
    return prompts, responses


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_groups_give_each_response_its_own_rows_outputs(tok, arch, attn):
    lm, rm = build(tok, arch, attn, "lm"), build(tok, arch, attn, "score")
    prompts, responses = rollout(tok)
    exp = pack_rollouts(prompts, responses, tok.pad_token_id)
    critic = TokenValueModel(rm)
    with torch.no_grad():
        logits, values = response_logits(lm, exp), response_values(critic, exp)
        scores = score_sequences(rm, prompts, responses, tok.pad_token_id)
        exp.groups = g = pack_groups(prompts, responses, 3, tok.pad_token_id, rm.config.pad_token_id)
        assert g.input_ids.shape == (2, 5 + 2 + 7 + 1)  # each prompt once: 15 tokens, not 3 x 12
        packed_logits, packed_values = response_logits(lm, exp), response_values(critic, exp)
        packed_scores = critic(g.input_ids, g.attention_mask(rm), g.position_ids)[g.group, g.last]
    real = exp.response_mask.bool()
    torch.testing.assert_close(packed_logits[real], logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_values[real], values[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_scores, scores, atol=1e-5, rtol=1e-5)


def test_minibatch_of_whole_groups_stays_packed_and_others_fall_back_to_rows(tok):
    lm = build(tok, "gpt2", "eager", "lm")
    prompts, responses = rollout(tok)
    exp = pack_rollouts(prompts, responses, tok.pad_token_id)
    exp.groups = pack_groups(prompts, responses, 3, tok.pad_token_id, tok.pad_token_id)
    with torch.no_grad():
        full = response_logits(lm, exp)
        second = exp.select([3, 4, 5])  # group 1: packed, trimmed to its own prompt and responses
        assert second.groups is not None and second.groups.input_ids.shape == (1, 5 + 2 + 7 + 1)
        mixed = exp.select([0, 4, 5])  # not a whole group: the row layout
        assert mixed.groups is None
        for sel, rows in ((second, [3, 4, 5]), (mixed, [0, 4, 5])):
            got = response_logits(lm, sel)
            real = sel.response_mask.bool()
            torch.testing.assert_close(got[real], full[rows][:, : got.shape[1]][real], atol=1e-5, rtol=1e-5)
    shuffled = exp.select([3, 5, 4])  # whole group, rows out of order: not packable as is
    assert shuffled.groups is None


def test_rows_of_a_group_must_share_their_prompt(tok):
    prompts, responses = rollout(tok)
    prompts[1] = [5, 6, 99]
    assert pack_groups(prompts, responses, 3, tok.pad_token_id, None) is None
    assert pack_groups(prompts[:5], responses[:5], 3, tok.pad_token_id, None) is None  # 5 rows, n = 3


def test_packing_is_chosen_only_where_it_saves_time():
    """The three shapes measured in packing_saves' docstring (10M GPT-2, d = 256, 64 rows)."""
    rows = lambda p, r: ([[1] * p] * 64, [[2] * r] * 64)  # noqa: E731
    assert packing_saves(*rows(32, 32), n=4, hidden=256)  # 160 tokens a group against 4 x 64
    assert not packing_saves(*rows(32, 32), n=16, hidden=256)  # 544-token rows: attention dominates
    assert packing_saves(*rows(128, 32), n=16, hidden=256)  # long prompts: packing wins anyway


def test_models_that_cannot_take_a_4d_mask_are_named(tok):
    lm = build(tok, "llama", "eager", "lm")
    shared_prompt.check(lm, 100, "rollout.share_prompt")
    lm.config._attn_implementation = "flash_attention_2"
    with pytest.raises(
        ConfigError, match=r"rollout.share_prompt: flash_attention_2 attention.*share_prompt=false"
    ):
        shared_prompt.check(lm, 100, "rollout.share_prompt")
    qwen = build(tok, "qwen2", "eager", "lm")
    qwen.config.use_sliding_window, qwen.config.sliding_window = True, 64
    with pytest.raises(ConfigError, match="row of 100 tokens outgrows the sliding window of 64"):
        shared_prompt.check(qwen, 100, "rollout.share_prompt")
    shared_prompt.check(qwen, 64, "rollout.share_prompt")


@pytest.mark.parametrize("batch_size", [64, 4, 1])
def test_score_groups_runs_as_many_forwards_packed_or_not(tok, batch_size, monkeypatch):
    """Under FSDP2/ZeRO-3 every forward is collective: processes whose rows choose packing and
    processes whose rows do not must run the same number of forwards."""
    from rlhf.rollout import reward_model as scoring

    rm = build(tok, "gpt2", "eager", "score")
    prompts, responses = rollout(tok)
    prompts, responses = prompts * 2, responses * 2  # 4 groups of 3
    calls = []
    rm.score.register_forward_hook(lambda *_: calls.append(1))
    counts = []
    for saves in (True, False):
        monkeypatch.setattr(scoring, "packing_saves", lambda *_, saves=saves: saves)
        calls.clear()
        scoring.score_groups(rm, prompts, responses, 3, tok.pad_token_id, batch_size)
        counts.append(len(calls))
    assert counts[0] == counts[1] == math.ceil(12 / max(3, batch_size // 3 * 3)), counts


@pytest.mark.parametrize("batch_size", [64, 3, 1])
def test_score_groups_reads_each_prompt_once_and_scores_like_rows(tok, batch_size, monkeypatch):
    """Packed scoring (up to batch_size rows of whole groups a forward) gives score_sequences'
    scores; rows that do not share their prompt n by n are scored row by row."""
    from rlhf.rollout import reward_model as scoring

    rm = build(tok, "gpt2", "eager", "score")
    prompts, responses = rollout(tok)
    packed = []
    original = scoring.pack_groups

    def spy(*args):
        g = original(*args)
        packed.append(g is not None)
        return g

    monkeypatch.setattr(scoring, "pack_groups", spy)
    rows = scoring.score_sequences(rm, prompts, responses, tok.pad_token_id)
    got = scoring.score_groups(rm, prompts, responses, 3, tok.pad_token_id, batch_size)
    torch.testing.assert_close(got, rows, atol=1e-5, rtol=1e-5)
    assert packed == [True, True] if batch_size < 6 else packed == [True]
    packed.clear()
    mixed = prompts[:2] + [prompts[3]] + prompts[3:]  # group 0's last row has group 1's prompt
    got = scoring.score_groups(rm, mixed, responses, 3, tok.pad_token_id, batch_size)
    torch.testing.assert_close(
        got, scoring.score_sequences(rm, mixed, responses, tok.pad_token_id), atol=1e-5, rtol=1e-5
    )
    assert False in packed


def test_a_lora_policy_runs_its_lm_head_on_the_response_columns_only(tok):
    """PEFT's forward passes logits_to_keep on to the model it wraps: the LM head must see the
    R + 1 columns read, not every column (it did, for LoRA policies, before)."""
    from peft import LoraConfig, get_peft_model

    lm = build(tok, "llama", "sdpa", "lm")
    prompts, responses = rollout(tok)
    exp = pack_rollouts(prompts, responses, tok.pad_token_id)
    with torch.no_grad():
        want = response_logits(lm, exp)
    lora = get_peft_model(lm, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    widths = []
    head = lora.get_base_model().lm_head
    hook = head.register_forward_pre_hook(lambda _m, args: widths.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            got = response_logits(lora, exp)  # B starts at zero: the same function as lm
    finally:
        hook.remove()
    assert widths == [exp.response_mask.shape[1] + 1]
    torch.testing.assert_close(got, want)
