"""LoRA adapter directories (PEFT's ``adapter_config.json`` + ``adapter_model.safetensors``) as
model paths.

A LoRA run writes its adapter beside the merged model (rlhf.recipes.run_adapter). Wherever a
model path is taken, an adapter directory works too: its base model is read from
``adapter_config.json``'s ``base_model_name_or_path``, loaded, fitted to the tokenizer, and the
adapter is applied and merged in, so that the model a verb starts from is the one the adapter
defines; a verb training with LoRA (``model.lora_r > 0``) then puts a fresh adapter on top of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlhf.models.errors import ModelError

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    """A directory holding a PEFT adapter and no whole model (no config.json)."""
    p = Path(str(path)).expanduser()
    return p.is_dir() and (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def adapter_base(path: str | Path, what: str = "model.path") -> str:
    """The base model path of the adapter at ``path``, checked to exist when it is a local path."""
    p = Path(str(path)).expanduser()
    try:
        config = json.loads((p / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{what}: {p / ADAPTER_CONFIG} is not readable JSON ({err})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base or not isinstance(base, str):
        raise ModelError(
            f"{what}: {p / ADAPTER_CONFIG} names no base model (base_model_name_or_path); "
            "set it to the directory of the model the adapter was trained on"
        )
    looks_local = base.startswith((".", "/", "~")) or base.count("/") > 1 or Path(base).exists()
    if looks_local and not Path(base).expanduser().exists():
        raise ModelError(
            f"{what}: {path} is a LoRA adapter whose base model {base} does not exist (from "
            f"base_model_name_or_path in {ADAPTER_CONFIG}); put the base model there or edit that field"
        )
    return base


def merge_adapter(model, path: str | Path, what: str = "model.path"):
    """``model`` (the adapter's base, fitted to the tokenizer) with the adapter at ``path`` applied
    and merged into its weights: a plain transformers model."""
    from peft import PeftConfig, PeftModel

    try:
        config = PeftConfig.from_pretrained(str(path))
        scalar = type(model).__name__.endswith("ForSequenceClassification")
        if config.task_type and config.task_type != ("SEQ_CLS" if scalar else "CAUSAL_LM"):
            # a policy's adapter under a reward model (or the reverse): its transformer layers apply,
            # the other kind's head does not
            config.task_type, config.modules_to_save = None, None
        peft_model = PeftModel.from_pretrained(model, str(path), config=config)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelError(f"{what}: could not apply the LoRA adapter {path} to its base ({err})") from None
    # peft froze the base weights; merged, they are the model's own again, trainable as any loaded model's
    return peft_model.merge_and_unload().requires_grad_(True)


@contextmanager
def adapters_off(peft_model, module=None) -> Iterator[None]:
    """The LoRA policy as its base model (a reference without a second copy): ``peft_model``'s
    adapters disabled and ``module`` (the model a wrapper runs, default ``peft_model``) in eval
    mode, no dropout; its training mode restored after."""
    module = peft_model if module is None else module
    was_training = module.training
    module.eval()
    try:
        with peft_model.disable_adapter():
            yield
    finally:
        module.train(was_training)
