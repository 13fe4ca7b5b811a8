"""Tiny random models and a locally trained BPE tokenizer, for tests, benchmarks and the demo.

Nothing is downloaded: the tokenizer is trained on the text given, the model is built from a
config. Three architectures cover the common families: GPT-2 (learned positions, LayerNorm),
Llama (RoPE, RMSNorm, SwiGLU) and Qwen2 (Llama plus QKV bias).

The tokenizer has a chat template whose assistant turn ends with the EOS token ``<|end|>``, so a
response + EOS closes the turn exactly as the template would.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL = {"eos": "<|end|>", "bos": "<|bos|>", "pad": "<|pad|>", "unk": "<|unk|>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# name -> (hidden size, layers, heads); GPT-2 parameter counts with a 2k-token vocabulary
SIZES = {
    "nano": (32, 2, 2),  # ~0.1M, for unit tests
    "1m": (128, 4, 4),  # ~1.1M
    "3m": (192, 6, 6),  # ~3M
    "10m": (256, 12, 8),  # ~10M
}
ARCHS = ("gpt2", "llama", "qwen2")


def train_tokenizer(texts: list[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on ``texts``, with pad/eos/bos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL["pad"], SPECIAL["eos"], SPECIAL["bos"], SPECIAL["unk"], *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=SPECIAL["eos"],
        bos_token=SPECIAL["bos"],
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
        additional_special_tokens=ROLE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def tiny_config(
    arch: str = "gpt2", size: str = "nano", vocab_size: int = 1024, max_positions: int = 256, **overrides
):
    """A transformers config for a tiny model of ``arch`` (gpt2 | llama | qwen2) and ``size``."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose from {ARCHS}")
    if size not in SIZES:
        raise ValueError(f"unknown tiny size {size!r}; choose from {list(SIZES)}")
    d, layers, heads = SIZES[size]
    if arch == "gpt2":
        kw = dict(
            vocab_size=vocab_size,
            n_positions=max_positions,
            n_embd=d,
            n_layer=layers,
            n_head=heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        kw.update(overrides)
        return GPT2Config(**kw)
    kw = dict(
        vocab_size=vocab_size,
        hidden_size=d,
        intermediate_size=int(d * 8 / 3) // 8 * 8,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
    )
    kw.update(overrides)
    return (LlamaConfig if arch == "llama" else Qwen2Config)(**kw)


def build_tiny_model(tokenizer, arch: str = "gpt2", size: str = "nano", seed: int = 0, **overrides):
    """A randomly initialised causal LM sized to ``tokenizer``, ids set to its special tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    cfg = tiny_config(arch, size, vocab_size=len(tokenizer), **{**ids, **overrides})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def make_tiny_checkpoint(
    directory: str | Path,
    texts: list[str],
    arch: str = "gpt2",
    size: str = "nano",
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts``, build a tiny model, save both to ``directory``; return it."""
    directory = Path(directory)
    tok = train_tokenizer(texts, vocab_size)
    model = build_tiny_model(tok, arch, size, seed)
    model.save_pretrained(str(directory), safe_serialization=True)
    tok.save_pretrained(str(directory))
    return directory


def count_parameters(model, non_embedding: bool = False) -> int:
    n = sum(p.numel() for p in model.parameters())
    if non_embedding:
        n -= model.get_input_embeddings().weight.numel()
    return n
