"""``<output_dir>/adapter/``: the PEFT adapter of a LoRA run, beside the merged ``final/``.

``final/`` stays an ordinary Hugging Face model with the adapter merged in (the run-directory
contract). A LoRA run also writes its adapter as PEFT does (``adapter_config.json`` +
``adapter_model.safetensors``) with the tokenizer, loadable by ``peft.PeftModel.from_pretrained``
on the base model, and usable as ``model.path`` by every verb (rlhf.models.adapters). It must be
written before the final save, which merges the adapter into the weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rlhf.recipes.run_dir import RunDir

if TYPE_CHECKING:  # hints only
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def save_adapter(
    run: RunDir,
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    start: str,
) -> Path | None:
    """Write the LoRA adapter of ``model`` (prepared or not) to ``<output_dir>/adapter/``
    atomically (temp dir, then rename); None, writing nothing, for a model without LoRA. Every
    process must call it (a sharded model's state is gathered collectively).

    ``start`` is the run's ``model.path``. When it is itself an adapter directory the LoRA was
    trained on top of that adapter's merged model, which exists nowhere else, so the new
    adapter's base is recorded as that directory (loaders resolve the chain); otherwise the base
    is the model peft recorded, as an absolute path."""
    from accelerate.utils import DistributedType

    from rlhf.models.adapters import is_adapter_dir

    unwrapped = accelerator.unwrap_model(model)
    if not hasattr(unwrapped, "peft_config"):
        return None
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state = accelerator.get_state_dict(model) if sharded else None
    out = run.root / ADAPTER_DIR
    if accelerator.is_main_process:
        for config in unwrapped.peft_config.values():
            base = start if is_adapter_dir(start) else config.base_model_name_or_path
            if base and Path(base).expanduser().exists():  # loadable from any working directory
                base = str(Path(base).expanduser().resolve())
            config.base_model_name_or_path = base
        tmp = run.root / f".tmp-{ADAPTER_DIR}"
        if tmp.exists():
            shutil.rmtree(tmp)
        unwrapped.save_pretrained(str(tmp), safe_serialization=True, state_dict=state)
        tokenizer.save_pretrained(str(tmp))
        missing = [f for f in ADAPTER_FILES if not (tmp / f).is_file()]
        if missing:
            raise RuntimeError(f"saving the LoRA adapter to {tmp} wrote no {', '.join(missing)}")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    accelerator.wait_for_everyone()
    return out
