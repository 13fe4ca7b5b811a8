"""SmolLM2-135M-Instruct from its GGUF file: the cached conversion equals transformers' own GGUF load,
and loads as the project needs it (pad != EOS, tied embeddings, the chat template)."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.models.loading import PAD_TOKEN, resolve_model_path

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, a small robot"]


def test_conversion_equals_transformers_gguf_load(smollm_gguf, smollm_dir):
    ref = AutoModelForCausalLM.from_pretrained(smollm_gguf.parent, gguf_file=smollm_gguf.name).eval()
    ref_tok = AutoTokenizer.from_pretrained(smollm_gguf.parent, gguf_file=smollm_gguf.name)
    ours = AutoModelForCausalLM.from_pretrained(smollm_dir).eval()
    tok = AutoTokenizer.from_pretrained(smollm_dir)
    config = json.loads((smollm_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert ours.lm_head.weight.data_ptr() == ours.model.embed_tokens.weight.data_ptr()  # still tied
    theirs = ref.state_dict()
    for name, weight in ours.state_dict().items():
        assert torch.equal(weight, theirs[name]), name
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    assert tok.apply_chat_template(messages, tokenize=False) == ref_tok.apply_chat_template(
        messages, tokenize=False
    )
    for text in PROMPTS:
        ids = tok(text, return_tensors="pt").input_ids
        assert ids.tolist() == ref_tok(text, return_tensors="pt").input_ids.tolist()
        with torch.no_grad():
            torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


def test_gguf_path_loads_with_a_pad_token_distinct_from_eos(smollm_gguf, smollm_dir, smollm):
    model, tok = smollm
    assert resolve_model_path(str(smollm_gguf)) == str(smollm_dir)  # the cache, not a new conversion
    assert tok.pad_token == PAD_TOKEN and tok.pad_token_id != tok.eos_token_id == 2
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 49153
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.config.pad_token_id == tok.pad_token_id
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "You are a helpful AI assistant named SmolLM" in prompt  # the template's default system turn
    assert prompt.endswith("<|im_start|>assistant\n")
