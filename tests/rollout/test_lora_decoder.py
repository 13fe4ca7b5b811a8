"""LoRA policies decode in the fast Llama decoder with their adapters merged into its weights."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from rlhf.models.tiny import build_tiny_model, train_tokenizer
from rlhf.rollout.engine import KVCacheEngine
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams

TEXTS = [f"question {i} answer {i * 7 % 10} and more words here" for i in range(200)]
PROMPTS = ["question 1", "question 12 answer 4 and more", "q", "answer 7 here and"]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0.0)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 300)


def lora_model(tok, seed: int = 0, **kw):
    """A tiny Llama under LoRA on every linear layer, its B matrices random (a fresh adapter's are
    zero, which would not tell a merged decoder from one that ignores the adapters)."""
    base = build_tiny_model(tok, "llama", "1m", seed=0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", **kw)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def texts(groups):
    return [[g.response_ids for g in gs] for gs in groups]


def test_lora_model_decodes_in_the_fast_decoder_like_hf_generate(tok):
    model = lora_model(tok)
    engine = KVCacheEngine(model, tok)
    assert engine.decoder.name == "llama"
    got = engine.generate(PROMPTS, GREEDY)
    ref = HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY)
    assert texts(got) == texts(ref)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a[0].logprobs, b[0].logprobs, atol=1e-4, rtol=0)
    with model.disable_adapter():  # the adapters change what is sampled: the merge is not a no-op
        plain = HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY)
    assert texts(plain) != texts(ref)


def test_sync_after_an_adapter_update_follows_the_model(tok):
    model = lora_model(tok)
    engine = KVCacheEngine(model, tok)
    before = texts(engine.generate(PROMPTS, GREEDY))
    with torch.no_grad():  # what an optimizer step on the adapters does
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.3)
    engine.sync_weights(model)
    after = texts(engine.generate(PROMPTS, GREEDY))
    assert after != before
    assert after == texts(HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY))


def test_dora_falls_back_to_the_generic_decoder(tok):
    """DoRA rescales each merged column by a norm: not merged here, the model's own forward runs."""
    model = lora_model(tok, use_dora=True)
    engine = KVCacheEngine(model, tok)
    assert engine.decoder.name == "generic"
    assert texts(engine.generate(PROMPTS, GREEDY)) == texts(
        HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY)
    )


def test_merged_weight_is_base_plus_scaled_delta_in_fp32(tok):
    """decoders.lora merges W + s B A in one fp32 addmm: the same numbers as peft's delta added in fp32."""
    from rlhf.rollout.decoders.lora import linear_weights

    model = lora_model(tok)
    layer = model.get_base_model().model.layers[0].mlp.up_proj
    got, _ = linear_weights(layer)
    want = layer.base_layer.weight.float() + layer.get_delta_weight("default").float()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    with model.disable_adapter():
        assert linear_weights(layer)[0] is layer.base_layer.weight


def test_sync_skips_unchanged_parameters_and_follows_changed_ones(tok):
    """A LoRA policy's LM head and norms are not re-packed at a sync unless they changed in place."""
    model = lora_model(tok)
    engine = KVCacheEngine(model, tok)
    weights = engine.decoder.weights
    head, norm = weights.lin["lm_head"].w, weights.t["norm"]
    engine.sync_weights(model)
    assert weights.lin["lm_head"].w is head  # unchanged: kept
    qkv = weights.lin["0.qkv"].w
    engine.sync_weights(model)
    assert weights.lin["0.qkv"].w is not qkv  # a merged weight is always re-made
    base = model.get_base_model()
    with torch.no_grad():  # an in-place change (what an optimizer step does) bumps the version
        base.lm_head.weight.mul_(1.5)
        base.model.norm.weight.add_(0.25)
    engine.sync_weights(model)
    assert weights.lin["lm_head"].w is not head
    torch.testing.assert_close(norm, base.model.norm.weight.detach().to(norm.dtype))
    assert texts(engine.generate(PROMPTS, GREEDY)) == texts(
        HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY)
    )


def test_sync_reloads_trained_parameters_changed_without_a_version_bump(tok):
    """torch's fused AdamW changes trained parameters in place without bumping their version: a
    sync must re-load every trained parameter whatever its version says."""
    model = build_tiny_model(tok, "llama", "1m", seed=0).eval()
    engine = KVCacheEngine(model, tok)
    before = texts(engine.generate(PROMPTS, GREEDY))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.5, fused=True)
    versions = [p._version for p in params]
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert [p._version for p in params] == versions  # what makes the version alone unreliable
    engine.sync_weights(model)
    torch.testing.assert_close(engine.decoder.weights.t["norm"], model.model.norm.weight.detach())
    after = texts(engine.generate(PROMPTS, GREEDY))
    assert after != before
    assert after == texts(HFGenerateEngine(model, tok).generate(PROMPTS, GREEDY))
