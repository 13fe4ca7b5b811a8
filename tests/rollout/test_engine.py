"""KVCacheEngine against the reference HFGenerateEngine, and the engine's own guarantees."""

import pytest
import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import IGNORE
from rlhf.losses.logprobs import next_token_logprobs
from rlhf.models.tiny import build_tiny_model, train_tokenizer
from rlhf.rollout.decoders import cache, linear
from rlhf.rollout.engine import KVCacheEngine
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams
from rlhf.rollout.sampling import inverse_cdf, top_k_top_p

TEXTS = [f"question {i} answer {i * 7 % 10} and more words here" for i in range(200)]
PROMPTS = ["question 1", "question 12 answer 4 and more", "q", "answer 7 here and", "more words"]
ARCHS = ["gpt2", "llama", "qwen2"]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0.0)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 300)


@pytest.fixture(scope="module")
def models(tok):
    return {arch: build_tiny_model(tok, arch, "1m", seed=0).eval() for arch in ARCHS}


def responses(groups):
    return [[g.response_ids for g in gs] for gs in groups]


def eos_likely(tok, arch: str, strength: float):
    """A nano model whose final hidden state is (about) a constant ``u`` and whose EOS logit is
    ``strength`` above the others' scale: EOS is the argmax (large strength) or frequent (small)."""
    model = build_tiny_model(tok, arch, "nano", seed=1, tie_word_embeddings=False).eval()
    head = model.lm_head.weight  # (V, d)
    with torch.no_grad():
        head.normal_(0, 0.05)
        if arch == "gpt2":  # LayerNorm with weight 0 and bias 1: u = (1, ..., 1)
            model.transformer.ln_f.weight.zero_()
            model.transformer.ln_f.bias.fill_(1.0)
            head[tok.eos_token_id] += strength / head.shape[1]
        else:  # RMSNorm has no bias: a huge first coordinate dominates, and only it is kept
            model.model.embed_tokens.weight[:, 0] += 1e3
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            head[tok.eos_token_id, 0] += strength / head.shape[1] ** 0.5
    return model


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "addmm"])
@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_matches_hf_generate(models, tok, arch, packed, monkeypatch):
    """Left-padded prompts of different lengths, split over batches (the cache is reused and grown);
    with oneDNN prepacked linears (the CPU default where available) and with plain addmm."""
    monkeypatch.setattr(linear, "PACKED_CPU", packed)
    ref = HFGenerateEngine(models[arch], tok).generate(PROMPTS, GREEDY)
    engine = KVCacheEngine(models[arch], tok, batch_size=2)
    got = engine.generate(PROMPTS, GREEDY)
    assert engine.decoder.name == ("gpt2" if arch == "gpt2" else "llama")
    assert engine.decoder.lin["lm_head"].packed == (packed and linear.packed_ok(torch.float32))
    assert responses(got) == responses(ref)
    assert [g[0].text for g in got] == [g[0].text for g in ref]
    for a, b in zip(got, ref):
        torch.testing.assert_close(a[0].logprobs, b[0].logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_generic_fallback_matches_hf_generate(models, tok, arch):
    engine = KVCacheEngine(models[arch], tok, batch_size=3, generic=True)
    assert engine.decoder.name == "generic"
    ref = HFGenerateEngine(models[arch], tok).generate(PROMPTS, GREEDY)
    assert responses(engine.generate(PROMPTS, GREEDY)) == responses(ref)


@pytest.mark.parametrize("hand_prefill", [True, False], ids=["hand", "sdpa"])
@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_logits_match_hf_forward_each_step(models, tok, arch, hand_prefill, monkeypatch):
    """Prefill with the hand attention (short prompts) or SDPA (long ones), then decode steps."""
    monkeypatch.setattr(cache, "HAND_PREFILL_MAX", 256 if hand_prefill else 0)
    model = models[arch]
    decoder = KVCacheEngine(model, tok).decoder
    seqs = [tok(p)["input_ids"] for p in PROMPTS]
    ids, mask = pad(seqs, tok.pad_token_id, left=True), pad([[1] * len(s) for s in seqs], 0, left=True)
    logits = decoder.prefill(ids, mask, max_new_tokens=6)
    for _ in range(6):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
        new = torch.randint(5, len(tok), (len(seqs),))  # any tokens: the check is the forward
        ids, mask = torch.cat([ids, new[:, None]], 1), torch.cat([mask, torch.ones_like(new)[:, None]], 1)
        logits = decoder.decode(new)


def test_same_seed_same_samples_other_seed_other_samples(models, tok):
    engine = KVCacheEngine(models["llama"], tok)
    params = SamplingParams(max_new_tokens=8, n=2, seed=3)
    a, b = engine.generate(PROMPTS, params), engine.generate(PROMPTS, params)
    c = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=2, seed=4))
    assert responses(a) == responses(b)
    assert responses(a) != responses(c)


@pytest.mark.parametrize("generic", [False, True])
def test_n_samples_share_one_prefill_per_prompt(models, tok, generic):
    engine = KVCacheEngine(models["gpt2"], tok, generic=generic)
    out = engine.generate(PROMPTS[:2], SamplingParams(max_new_tokens=5, n=3, seed=1, min_new_tokens=5))
    assert [len(g) for g in out] == [3, 3]
    lengths = [len(tok(p)["input_ids"]) for p in PROMPTS[:2]]
    assert engine.last_stats["prefill_tokens"] == sum(lengths)  # each prompt once, not n times
    assert engine.last_stats["rows"] == 6
    for gs, p in zip(out, PROMPTS[:2]):
        assert all(g.prompt_ids == tok(p)["input_ids"] for g in gs)
        assert all(len(g.response_ids) == len(g.logprobs) == 5 for g in gs)
    assert len({tuple(g.response_ids) for gs in out for g in gs}) > 2  # the n samples differ
    # the shared prefix is the prompt's own: greedy n copies equal greedy alone
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0, n=3)
    alone = responses(engine.generate(PROMPTS[:2], GREEDY))
    assert responses(engine.generate(PROMPTS[:2], greedy)) == [[r[0][:6]] * 3 for r in alone]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_min_new_tokens_then_eos_like_hf(tok, arch):
    model = eos_likely(tok, arch, strength=1e3)  # EOS is always the argmax
    params = SamplingParams(max_new_tokens=10, temperature=0.0, min_new_tokens=4)
    got = KVCacheEngine(model, tok).generate(PROMPTS, params)
    assert responses(got) == responses(HFGenerateEngine(model, tok).generate(PROMPTS, params))
    for (g,) in got:
        assert g.finished and len(g.response_ids) == 5 and g.response_ids[-1] == tok.eos_token_id


@pytest.mark.parametrize("generic", [False, True])
def test_rows_stop_at_eos_and_leave_the_batch(tok, generic):
    model = eos_likely(tok, "gpt2", strength=4.0)  # EOS has p ~ 0.15 a step
    engine = KVCacheEngine(model, tok, generic=generic)
    out = [g for gs in engine.generate(PROMPTS * 4, SamplingParams(max_new_tokens=12, seed=0)) for g in gs]
    lengths = [len(g.response_ids) for g in out]
    assert len(set(lengths)) > 2  # rows ended at different steps
    for g in out:
        assert g.finished == (g.response_ids[-1] == tok.eos_token_id)
        assert tok.eos_token_id not in g.response_ids[:-1]
    # a row decodes after each of its tokens but the last (the first comes from prefill)
    stats = engine.last_stats
    assert stats["row_steps"] == sum(n - 1 for n in lengths) < len(out) * (12 - 1)
    assert stats["new_tokens"] == sum(lengths)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_stop_string_cuts_the_text_and_ends_the_row(models, tok, arch):
    model = models[arch]
    full = KVCacheEngine(model, tok).generate(PROMPTS[:1], GREEDY)[0][0]
    ids = full.response_ids
    stop = tok.decode(ids[3:5], skip_special_tokens=True).strip()
    assert stop and stop in full.text
    params = SamplingParams(max_new_tokens=10, temperature=0.0, stop=[stop, "never occurs"])
    engine = KVCacheEngine(model, tok)
    g = engine.generate(PROMPTS[:1], params)[0][0]
    assert g.text == full.text[: full.text.find(stop) + len(stop)]
    assert g.finished and g.response_ids == ids[: len(g.response_ids)] and len(g.response_ids) <= 5
    assert engine.last_stats["row_steps"] == len(g.response_ids) - 1
    ref = HFGenerateEngine(model, tok).generate(PROMPTS[:1], params)[0][0]
    assert (ref.response_ids, ref.text, ref.finished) == (g.response_ids, g.text, g.finished)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_logprobs_match_a_full_forward_at_the_temperature(models, tok, arch):
    """Log-probs are under softmax(logits / T), before the top-k / top-p truncation."""
    model, temperature = models[arch], 0.7
    params = SamplingParams(max_new_tokens=8, temperature=temperature, top_k=50, top_p=0.9, n=2, seed=2)
    gens = [g for gs in KVCacheEngine(model, tok).generate(PROMPTS, params) for g in gs]
    seqs = [g.prompt_ids + g.response_ids for g in gens]
    ids, mask = pad(seqs, tok.pad_token_id), pad([[1] * len(s) for s in seqs], 0)
    labels = pad([[IGNORE] * len(g.prompt_ids) + g.response_ids for g in gens], IGNORE)
    with torch.no_grad():
        logp = next_token_logprobs(model(input_ids=ids, attention_mask=mask).logits, labels, temperature)
    for row, g in zip(logp, gens):
        start = len(g.prompt_ids) - 1
        torch.testing.assert_close(
            row[start : start + len(g.response_ids)].tolist(), g.logprobs, atol=1e-4, rtol=0
        )


def test_top_k_1_is_greedy(models, tok):
    engine = KVCacheEngine(models["qwen2"], tok)
    sampled = engine.generate(PROMPTS, SamplingParams(max_new_tokens=10, temperature=1.3, top_k=1, seed=9))
    assert responses(sampled) == responses(engine.generate(PROMPTS, GREEDY))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_sync_weights_follows_the_model(tok, arch):
    model = build_tiny_model(tok, arch, "1m", seed=0).eval()
    engine = KVCacheEngine(model, tok)
    before = responses(engine.generate(PROMPTS, GREEDY))
    trained = build_tiny_model(tok, arch, "1m", seed=7).eval()  # "the policy after some steps"
    engine.sync_weights(trained)
    after = responses(engine.generate(PROMPTS, GREEDY))
    assert after != before
    assert after == responses(HFGenerateEngine(trained, tok).generate(PROMPTS, GREEDY))


def test_an_in_place_update_without_sync_is_picked_up(tok):
    """An optimizer step changes parameters in place; a stale copy must never be sampled from."""
    model = build_tiny_model(tok, "gpt2", "1m", seed=0).eval()
    engine = KVCacheEngine(model, tok)
    before = responses(engine.generate(PROMPTS, GREEDY))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    after = responses(engine.generate(PROMPTS, GREEDY))
    assert after != before
    assert after == responses(HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY))


def test_a_fused_optimizer_step_without_sync_is_picked_up(tok):
    """Fused AdamW (the recipes' optimizer) updates in place without bumping version counters."""
    model = build_tiny_model(tok, "llama", "1m", seed=0).eval()
    engine = KVCacheEngine(model, tok)
    before = responses(engine.generate(PROMPTS, GREEDY))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    versions = [p._version for p in model.parameters()]
    model(input_ids=torch.tensor([[1, 2, 3]])).logits.square().mean().backward()
    opt.step()
    assert versions == [p._version for p in model.parameters()]  # what the counters alone miss
    after = responses(engine.generate(PROMPTS, GREEDY))
    assert after != before
    assert after == responses(HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_bf16_copy_samples_valid_text_with_close_logprobs(models, tok, arch):
    model = models[arch]
    engine = KVCacheEngine(model, tok, dtype=torch.bfloat16)
    assert engine.decoder.t["norm" if arch == "llama" else "lnf_w"].dtype == torch.bfloat16
    assert model.dtype == torch.float32
    params = SamplingParams(max_new_tokens=8, n=2, seed=0)
    gens = [g for gs in engine.generate(PROMPTS, params) for g in gs]
    assert all(isinstance(g.text, str) and all(0 <= t < len(tok) for t in g.response_ids) for g in gens)
    # the same tokens scored by the fp32 model: bf16 rounding moves log-probs only a little
    seqs = [g.prompt_ids + g.response_ids for g in gens]
    ids, mask = pad(seqs, tok.pad_token_id), pad([[1] * len(s) for s in seqs], 0)
    labels = pad([[IGNORE] * len(g.prompt_ids) + g.response_ids for g in gens], IGNORE)
    with torch.no_grad():
        logp = next_token_logprobs(model(input_ids=ids, attention_mask=mask).logits, labels)
    diffs = [
        abs(a - b)
        for row, g in zip(logp.tolist(), gens)
        for a, b in zip(row[len(g.prompt_ids) - 1 :], g.logprobs)
    ]
    assert max(diffs) < 0.1 and sum(diffs) / len(diffs) < 0.03


def test_bad_sampling_params_name_the_field(models, tok):
    engine = KVCacheEngine(models["gpt2"], tok)
    with pytest.raises(ValueError, match="top_p"):
        engine.generate(PROMPTS, SamplingParams(top_p=0.0))
    with pytest.raises(ValueError, match="SamplingParams.n"):
        engine.generate(PROMPTS, SamplingParams(n=0))


def test_inverse_cdf_draws_follow_the_probabilities():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.25, 0.25, 0.0]]).repeat(40000, 1)
    draws = inverse_cdf(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=6) / len(draws)
    torch.testing.assert_close(freq, probs[0], atol=0.01, rtol=0)
    assert freq[[0, 2, 5]].sum() == 0  # zero-probability tokens are never drawn


def test_top_k_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]]))
    kept = lambda k, p: torch.isfinite(top_k_top_p(logits.clone(), k, p))[0].tolist()  # noqa: E731
    assert kept(2, 1.0) == [False, True, False, True]
    assert kept(0, 0.5) == [False, True, False, True]  # 0.4 < 0.5, so 0.3 is needed too
    assert kept(0, 0.4) == [False, True, False, False]
    assert kept(0, 0.05) == [False, True, False, False]  # the most likely token always stays
    # top-p applies to the top-k survivors renormalized (as HF): 0.4/0.9 + 0.3/0.9 = 0.78
    assert kept(3, 0.8) == [False, True, True, True]
    assert kept(3, 0.75) == [False, True, False, True]
