"""The rollout engine's Llama decoder equals transformers' forward on SmolLM2-135M-Instruct (30 layers,
grouped-query attention with 9 query and 3 key/value heads, tied embeddings): logits at each step and
greedy tokens."""

from __future__ import annotations

import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import encode_prompt
from rlhf.rollout.engine import KVCacheEngine
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams

QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "What is 12 times 3?"]


def chats():
    return [[{"role": "user", "content": q}] for q in QUESTIONS]


def test_decoder_logits_match_hf_forward_each_step(smollm):
    model, tok = smollm
    decoder = KVCacheEngine(model, tok).decoder
    assert decoder.name == "llama"
    seqs = [encode_prompt(tok, c) for c in chats()]
    ids, mask = pad(seqs, tok.pad_token_id, left=True), pad([[1] * len(s) for s in seqs], 0, left=True)
    logits = decoder.prefill(ids, mask, max_new_tokens=3)
    for _ in range(3):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        torch.testing.assert_close(logits, ref, atol=2e-3, rtol=0)
        new = ref.argmax(-1)
        ids, mask = torch.cat([ids, new[:, None]], 1), torch.cat([mask, torch.ones_like(new)[:, None]], 1)
        logits = decoder.decode(new)


def test_greedy_answers_match_hf_generate(smollm):
    model, tok = smollm
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    ours = KVCacheEngine(model, tok).generate(chats(), params)
    ref = HFGenerateEngine(model, tok).generate(chats(), params)
    assert [g[0].response_ids for g in ours] == [g[0].response_ids for g in ref]
    assert ours[0][0].text.startswith("The capital of France is Paris")  # a correctly converted model
