"""rlhf.models: tiny offline models, tokenizer padding, scalar heads, saving, LoRA, path checks.

Every checkpoint is a "nano" model built here (~0.1M parameters); nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlhf.data.collators import pad
from rlhf.models.loading import (
    PAD_TOKEN,
    ModelError,
    check_model_path,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    save_pretrained,
)
from rlhf.models.tiny import ARCHS, build_tiny_model, make_tiny_checkpoint, tiny_config
from rlhf.sections import ModelConfig

CLASSES = {
    "gpt2": ("GPT2LMHeadModel", "GPT2ForSequenceClassification"),
    "llama": ("LlamaForCausalLM", "LlamaForSequenceClassification"),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2ForSequenceClassification"),
}
SHORT, LONG = "the cat sat on a mat.", "hello there, what is two plus three? it is five, thank you."


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, corpus):
    """arch -> directory of a saved nano model with the tiny tokenizer (which has a pad token)."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: make_tiny_checkpoint(root / arch, corpus, arch=arch, vocab_size=512) for arch in ARCHS}


def _tokenizer_without_pad(texts, pad_is_eos: bool):
    """A BPE tokenizer whose vocabulary has no '<|pad|>': either no pad token, or pad == EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    kw = {"pad_token": "<|end|>"} if pad_is_eos else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", **kw)


@pytest.fixture(scope="module", params=["no-pad", "pad-is-eos"])
def padless_checkpoint(request, tmp_path_factory, corpus):
    """A gpt2 nano checkpoint whose tokenizer lacks a pad token distinct from EOS."""
    tok = _tokenizer_without_pad(corpus, pad_is_eos=request.param == "pad-is-eos")
    if request.param == "no-pad":
        assert tok.pad_token_id is None
    else:
        assert tok.pad_token_id == tok.eos_token_id
    path = tmp_path_factory.mktemp(request.param)
    build_tiny_model(tok, "gpt2", "nano").save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path, len(tok)


def ids_of(tok, *texts) -> list[list[int]]:
    return [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]


def scores(model, tok, seqs: list[list[int]]) -> torch.Tensor:
    """One scalar per right-padded sequence.  Shape: (N,)"""
    input_ids = pad(seqs, tok.pad_token_id)
    mask = pad([[1] * len(s) for s in seqs], 0)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1)


def logits_of(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


# ---------------------------------------------------------------- tiny models and tokenizers


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_builds_each_architecture(checkpoints, arch):
    tok = load_tokenizer(str(checkpoints[arch]))
    model = load_policy(ModelConfig(path=str(checkpoints[arch])), tok)
    assert type(model).__name__ == CLASSES[arch][0]
    assert model.config.model_type == arch
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    ids = tok(SHORT)["input_ids"]
    assert logits_of(model, ids).shape == (1, len(ids), len(tok))


def test_tiny_config_rejects_unknown_arch_and_size():
    with pytest.raises(ValueError, match="unknown tiny architecture"):
        tiny_config("mamba")
    with pytest.raises(ValueError, match="unknown tiny size"):
        tiny_config("gpt2", "huge")


@pytest.mark.parametrize("arch", ARCHS)
def test_pad_is_distinct_from_eos_and_padding_is_right(checkpoints, arch):
    tok = load_tokenizer(str(checkpoints[arch]))
    assert tok.pad_token == PAD_TOKEN
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.padding_side == "right"
    model = load_scalar_model(ModelConfig(path=str(checkpoints[arch])), tok)
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.eos_token_id == tok.eos_token_id


def test_load_tokenizer_adds_a_pad_token_and_models_grow_to_match(padless_checkpoint):
    path, n_vocab = padless_checkpoint
    tok = load_tokenizer(str(path))
    assert tok.pad_token == PAD_TOKEN
    assert tok.pad_token_id == n_vocab  # a new row, after the existing vocabulary
    assert tok.pad_token_id != tok.eos_token_id
    assert len(tok) == n_vocab + 1
    assert tok.padding_side == "right"

    cfg = ModelConfig(path=str(path))
    policy = load_policy(cfg, tok)
    assert policy.get_input_embeddings().weight.shape[0] == n_vocab + 1
    assert policy.config.pad_token_id == n_vocab
    assert policy.generation_config.pad_token_id == n_vocab
    assert logits_of(policy, [0, 1, n_vocab]).shape[-1] == n_vocab + 1

    reward = load_scalar_model(cfg, tok)
    assert reward.get_input_embeddings().weight.shape[0] == n_vocab + 1
    assert reward.config.pad_token_id == n_vocab
    # the grown model still reads the last real token of a padded row
    seqs = ids_of(tok, SHORT, LONG)
    assert_close(scores(reward, tok, seqs)[0], scores(reward, tok, seqs[:1])[0], atol=1e-5, rtol=1e-5)


def test_load_tokenizer_without_eos_is_an_error(tmp_path, corpus):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(corpus, trainer=trainers.BpeTrainer(vocab_size=280, show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=raw).save_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no EOS token"):
        load_tokenizer(str(tmp_path))


# ---------------------------------------------------------------- reward models


@pytest.mark.parametrize("arch", ARCHS)
def test_scalar_model_reads_the_last_non_pad_token(checkpoints, arch):
    tok = load_tokenizer(str(checkpoints[arch]))
    model = load_scalar_model(ModelConfig(path=str(checkpoints[arch])), tok).eval()
    assert type(model).__name__ == CLASSES[arch][1]
    assert model.config.num_labels == 1
    short, long = ids_of(tok, SHORT, LONG)
    assert len(long) > len(short) + 3
    alone = scores(model, tok, [short])
    together = scores(model, tok, [short, long])
    assert together.shape == (2,)
    assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)
    assert_close(together[1], scores(model, tok, [long])[0], atol=1e-5, rtol=1e-5)
    # and it is not just a constant head: different sequences score differently
    assert abs(together[0].item() - together[1].item()) > 1e-6


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_policy_reloads_with_plain_transformers(checkpoints, arch, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = load_tokenizer(str(checkpoints[arch]))
    model = load_policy(ModelConfig(path=str(checkpoints[arch])), tok).eval()
    ids = tok(LONG)["input_ids"]
    expected = logits_of(model, ids)
    save_pretrained(model, tok, tmp_path / "final")
    assert (tmp_path / "final" / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final")).eval()
    assert type(again).__name__ == CLASSES[arch][0]
    assert_close(logits_of(again, ids), expected)
    tok2 = AutoTokenizer.from_pretrained(str(tmp_path / "final"))
    assert tok2.pad_token_id == tok.pad_token_id != tok2.eos_token_id
    assert tok2(LONG)["input_ids"] == ids


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_reward_model_reloads_with_plain_transformers(checkpoints, arch, tmp_path):
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(str(checkpoints[arch]))
    model = load_scalar_model(ModelConfig(path=str(checkpoints[arch])), tok).eval()
    seqs = ids_of(tok, SHORT, LONG)
    expected = scores(model, tok, seqs)
    save_pretrained(model, tok, tmp_path / "rm")
    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "rm")).eval()
    assert type(again).__name__ == CLASSES[arch][1]
    assert again.config.num_labels == 1
    assert again.config.pad_token_id == tok.pad_token_id
    assert_close(scores(again, tok, seqs), expected)


def test_bfloat16_dtype(checkpoints):
    tok = load_tokenizer(str(checkpoints["llama"]))
    model = load_policy(ModelConfig(path=str(checkpoints["llama"]), dtype="bfloat16"), tok)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


# ---------------------------------------------------------------- LoRA


def _perturb_lora(model) -> None:
    """LoRA B starts at zero (a no-op); give it weights so merging changes the model."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_policy_trains_only_adapters_and_saves_merged(checkpoints, arch, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    path = str(checkpoints[arch])
    tok = load_tokenizer(path)
    model = load_policy(ModelConfig(path=path, lora_r=4), tok)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert not any("lora_" in n for n in frozen)
    n_train = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
    assert n_train < sum(p.numel() for p in model.parameters()) / 4

    _perturb_lora(model)
    model.eval()
    ids = tok(LONG)["input_ids"]
    expected = logits_of(model, ids)
    base = AutoModelForCausalLM.from_pretrained(path).eval()
    assert not torch.allclose(logits_of(base, ids), expected, atol=1e-3)  # the adapters matter

    save_pretrained(model, tok, tmp_path / "merged")
    keys = load_file(str(tmp_path / "merged" / "model.safetensors")).keys()
    assert not any("lora" in k or "base_model" in k for k in keys)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
    assert type(merged).__name__ == CLASSES[arch][0]
    assert_close(logits_of(merged, ids), expected, atol=1e-5, rtol=1e-4)


def test_lora_reward_model_trains_adapters_and_head_and_saves_merged(checkpoints, tmp_path):
    from transformers import AutoModelForSequenceClassification

    path = str(checkpoints["llama"])
    tok = load_tokenizer(path)
    model = load_scalar_model(ModelConfig(path=path, lora_r=4), tok)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    assert any("score" in n for n in trainable)  # the new head is trained in full
    assert all("lora_" in n or "score" in n for n in trainable)

    _perturb_lora(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "score" in n and p.requires_grad:
                p.add_(0.1)
    model.eval()
    seqs = ids_of(tok, SHORT, LONG)
    expected = scores(model, tok, seqs)
    save_pretrained(model, tok, tmp_path / "rm")
    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "rm")).eval()
    assert_close(scores(again, tok, seqs), expected, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- path checks


def test_check_model_path_errors(tmp_path):
    with pytest.raises(ModelError, match="model.path is not set"):
        check_model_path("")
    with pytest.raises(ModelError, match=f"model.path: directory {tmp_path / 'missing'} does not exist"):
        check_model_path(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="reward.path: directory ./nope does not exist"):
        check_model_path("./nope", what="reward.path")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        check_model_path(str(tmp_path / "empty"))
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(ModelError, match="does not exist"):
        check_model_path(str(tmp_path / "file.bin"))
    # hub ids are passed through untouched (nothing is fetched here)
    assert check_model_path("org/name") == "org/name"
    assert check_model_path("gpt2") == "gpt2"


def test_loaders_check_the_path_first(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ModelError, match="does not exist"):
        load_policy(ModelConfig(path=str(tmp_path / "missing")), tokenizer=None)
    with pytest.raises(ModelError, match="is not set"):
        load_scalar_model(ModelConfig(), tokenizer=None)


def test_attn_implementation_is_passed_to_transformers_and_gives_the_same_logits(checkpoints):
    path = checkpoints["gpt2"]
    tok = load_tokenizer(str(path))
    eager = load_policy(ModelConfig(path=str(path), attn_implementation="eager"), tok).eval()
    sdpa = load_policy(ModelConfig(path=str(path), attn_implementation="sdpa"), tok).eval()
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    ids = torch.tensor(ids_of(tok, "the cat sat on a mat"))
    assert_close(eager(ids).logits, sdpa(ids).logits, rtol=1e-4, atol=1e-4)


def test_gpt2_gelu_new_loads_as_the_fused_kernel_with_the_same_outputs(tmp_path):
    """GPT-2's gelu_new (7 elementwise ops) is loaded as torch's one-kernel tanh GELU: same function."""
    from transformers import AutoModelForCausalLM

    texts = [f"question {i} answer {i % 7}" for i in range(100)]
    path = make_tiny_checkpoint(tmp_path / "m", texts, "gpt2", "nano", vocab_size=300)
    reference = AutoModelForCausalLM.from_pretrained(path).eval()
    assert reference.config.activation_function == "gelu_new"
    tok = load_tokenizer(str(path))
    model = load_policy(ModelConfig(path=str(path)), tok).eval()
    assert model.config.activation_function == "gelu_pytorch_tanh"
    ids = torch.randint(0, 250, (2, 12))
    assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits, rtol=0, atol=1e-5)
