"""Load any Hugging Face causal LM as a policy, or as a reward/value model with a scalar head.

Reward and value models are ``AutoModelForSequenceClassification(num_labels=1)``: built from a
causal-LM checkpoint, the transformer is reused and a fresh linear ``score`` head reads the
hidden state of the last non-pad token. Reward models trained by other tools load here, and ours
load there.

Padding: a separate pad token is required (pad != EOS). With pad == EOS a sequence classifier
would score the first EOS instead of the last token, and a masked loss could not tell padding
from a real end of answer. A tokenizer without one gets ``<|pad|>`` added and the model's
embeddings grow by one row.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from rlhf.models.adapters import adapter_base, is_adapter_dir, merge_adapter
from rlhf.models.errors import ModelError  # noqa: F401  (raised here; imported from here by callers)
from rlhf.models.gguf import check_gguf, gguf_checkpoint, is_gguf
from rlhf.sections import ModelConfig

PAD_TOKEN = "<|pad|>"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def check_model_path(path: str, what: str = "model.path") -> str:
    """Fail early on a wrong model path, before any work; nothing is loaded or converted.

    A GGUF file must exist, be readable and ``gguf`` be installed; a local directory must exist and
    hold a config.json (or be a LoRA adapter directory whose base model exists); anything else is
    tried as a hub id.
    """
    if not path:
        raise ModelError(f"{what} is not set: give a Hugging Face model directory, a GGUF file or a hub id")
    if is_adapter_dir(path):
        check_model_path(adapter_base(path, what), f"{what} (the base model of the adapter {path})")
        return path
    if is_gguf(path):
        check_gguf(path, what)
        return path
    # a hub id is "name" or "org/name"; anything else is a local path
    looks_local = Path(path).exists() or path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_local:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ModelError(f"{what}: directory {path} does not exist")
        if not (p / "config.json").is_file():
            ggufs = sorted(f.name for f in p.glob("*.gguf"))
            if ggufs:
                raise ModelError(
                    f"{what}: {path} has no config.json but holds GGUF file(s) {', '.join(ggufs)}: give the "
                    f"file's path, or set model.gguf_file={ggufs[0]}"
                )
            raise ModelError(f"{what}: {path} has no config.json; is it a Hugging Face model directory?")
    return path


def resolve_model_path(path: str, what: str = "model.path") -> str:
    """What ``from_pretrained`` reads for ``path``: a GGUF file's cached conversion, else ``path``.

    Every model and tokenizer the project loads goes through here, so a GGUF file works wherever a
    model path is taken (policy, reference, reward model, serving, evaluation).
    """
    if is_gguf(path):
        return str(gguf_checkpoint(path, what))
    return path


# activations that have a one-kernel equivalent: GPT-2's "gelu_new" is the tanh approximation of
# GELU written as seven elementwise ops; torch's gelu(approximate="tanh") is the same function in
# one kernel (12-18% of a 10M-parameter GPT-2 training step on CPU, bench/)
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}


def _fused_activation(path: str, kwargs: dict) -> dict:
    """``activation_function`` override for from_pretrained when the checkpoint's has a fused twin."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=kwargs.get("trust_remote_code", False))
    except (OSError, ValueError):
        return {}
    act = getattr(config, "activation_function", None)
    return {"activation_function": FUSED_ACTIVATIONS[act]} if act in FUSED_ACTIVATIONS else {}


def _from_pretrained(loader, path: str, what: str, **kwargs):
    path = resolve_model_path(path, what)
    try:
        if loader.__name__ != "AutoTokenizer":
            kwargs = {**_fused_activation(path, kwargs), **kwargs}
        return loader.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(f"{what}: could not load '{path}' ({str(err).splitlines()[0]})") from None


def load_tokenizer(path: str, what: str = "model.path"):
    """Tokenizer of ``path``, right-padded, with a pad token distinct from EOS."""
    from transformers import AutoTokenizer

    check_model_path(path, what)
    while is_adapter_dir(path) and not (Path(path).expanduser() / "tokenizer_config.json").is_file():
        path = adapter_base(path, what)  # an adapter saved without its tokenizer uses the base's
    tok = _from_pretrained(AutoTokenizer, path, what)
    if tok.eos_token_id is None:
        raise ModelError(f"{what}: tokenizer of {path} has no EOS token; responses could never end")
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        tok.add_special_tokens({"pad_token": PAD_TOKEN})
    tok.padding_side = "right"
    return tok


def _fit_to_tokenizer(model, tokenizer) -> None:
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id


def _apply_lora(model, cfg: ModelConfig, task_type: str):
    if cfg.lora_r <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type=task_type,
    )
    return get_peft_model(model, lora)


def _attn_kwargs(cfg: ModelConfig) -> dict:
    return {} if cfg.attn_implementation == "auto" else {"attn_implementation": cfg.attn_implementation}


def without_lora(cfg: ModelConfig) -> ModelConfig:
    """The model config with no LoRA adapters: for commands that only sample or score, never train."""
    return replace(cfg, lora_r=0)


def load_policy(cfg: ModelConfig, tokenizer, what: str = "model.path"):
    """A causal LM from ``cfg.path`` in ``cfg.dtype``, fitted to ``tokenizer``, with LoRA if asked."""
    from transformers import AutoModelForCausalLM

    check_model_path(cfg.path, what)
    model = _load_fitted(
        AutoModelForCausalLM,
        cfg.path,
        what,
        tokenizer,
        dtype=DTYPES[cfg.dtype],
        trust_remote_code=cfg.trust_remote_code,
        **_attn_kwargs(cfg),
    )
    return _apply_lora(model, cfg, "CAUSAL_LM")


def _load_fitted(loader, path: str, what: str, tokenizer, depth: int = 0, **kwargs):
    """``loader.from_pretrained(path)`` fitted to ``tokenizer``; for a LoRA adapter directory, its
    base model (itself possibly an adapter: a LoRA run started from one) with the adapter merged."""
    if not is_adapter_dir(path):
        model = _from_pretrained(loader, path, what, **kwargs)
        _fit_to_tokenizer(model, tokenizer)
        return model
    if depth >= 8:
        raise ModelError(
            f"{what}: {path}: more than 8 adapters stacked on each other (a loop of base paths?)"
        )
    base = _load_fitted(loader, adapter_base(path, what), what, tokenizer, depth + 1, **kwargs)
    return merge_adapter(base, path, what)


def load_scalar_model(cfg: ModelConfig, tokenizer, what: str = "model.path", trained: bool = False):
    """A reward/value model: ``AutoModelForSequenceClassification`` with one output.

    From a causal-LM checkpoint the ``score`` head is new (initialised by transformers); from a
    reward-model checkpoint it is loaded. ``trained``: the checkpoint must hold that head (a model
    that scores rewards); a causal LM given there would score with random weights, so it is an error.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    check_model_path(cfg.path, what)
    kwargs = {"num_labels": 1, "dtype": DTYPES[cfg.dtype], "trust_remote_code": cfg.trust_remote_code}
    if is_adapter_dir(cfg.path):  # a reward model's adapter carries its score head (peft's modules_to_save)
        if trained and not _adapter_head(cfg.path):
            raise ModelError(
                f"{what}: {cfg.path} is a LoRA adapter without a score head (a causal LM's, not a "
                "reward model's), so its scores would be random; give a reward model or its adapter"
            )
        model = _load_fitted(AutoModelForSequenceClassification, cfg.path, what, tokenizer, **kwargs,
                             **_attn_kwargs(cfg))  # fmt: skip
        return _apply_lora(model, cfg, "SEQ_CLS")
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the "newly initialized: score.weight" notice is expected here
    try:
        model, info = _from_pretrained(
            AutoModelForSequenceClassification,
            cfg.path,
            what,
            num_labels=1,
            dtype=DTYPES[cfg.dtype],
            trust_remote_code=cfg.trust_remote_code,
            output_loading_info=True,
            **_attn_kwargs(cfg),
        )
    except RuntimeError as err:  # a classifier with more than one label: its head has another shape
        if "mismatch" not in str(err):
            raise
        raise ModelError(
            f"{what}: {cfg.path} is a classifier whose score head has another shape than one output; "
            "a reward model has num_labels=1"
        ) from None
    finally:
        logging.set_verbosity(verbosity)
    if trained and info["missing_keys"]:
        raise ModelError(
            f"{what}: {cfg.path} has no reward head ({', '.join(sorted(info['missing_keys']))} not in the "
            "checkpoint), so its scores would be random; give a reward model directory (`rlhf reward` "
            "writes one)"
        )
    _fit_to_tokenizer(model, tokenizer)
    model = _apply_lora(model, cfg, "SEQ_CLS")
    return model


def _adapter_head(path: str) -> bool:
    """Whether the adapter at ``path`` saves a sequence classifier's head."""
    import json

    config = json.loads((Path(path).expanduser() / "adapter_config.json").read_text(encoding="utf-8"))
    return config.get("task_type") == "SEQ_CLS" or bool(config.get("modules_to_save"))


def save_pretrained(model, tokenizer, directory: str | Path) -> None:
    """Save as a plain Hugging Face model (LoRA adapters merged in) plus the tokenizer."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
