"""Write a trained model whole, on any engine, or fail.

Under FSDP2 and ZeRO-3 no process holds the whole model: every process must enter the gather
(a save on the main process alone hangs, or writes the empty local partitions), and only the
main process writes. What was written is then read back (names and shapes from the safetensors
headers) and compared with the model its config describes: a missing tensor, an empty one or a
wrong shape raises ``SaveError`` on every process, so no run ends with status 0 after writing a
model that does not load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PretrainedConfig, PreTrainedTokenizerBase


class SaveError(RuntimeError):
    """What was written is not a whole model; the run must not report success."""


def gather_state_dict(accelerator: Accelerator, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole model's state dict on the main process (None elsewhere, and when the model is
    whole in every process: it is then saved straight from the module). Collective: every process
    must call it."""
    from rlhf.recipes.engines import is_sharded

    if not is_sharded(accelerator):
        return None
    # FSDP2: torch.distributed.checkpoint's full state dict (all-gathers every shard, rank 0 keeps
    # it on CPU); ZeRO-3: DeepSpeed gathers each partitioned parameter in turn (needs
    # stage3_gather_16bit_weights_on_model_save, which engines.fill_deepspeed_config sets)
    state = accelerator.get_state_dict(model)
    return {k: v.detach().cpu() for k, v in state.items()} if accelerator.is_main_process else None


def model_class(model: torch.nn.Module) -> type:
    """The Hugging Face class of ``model``, under FSDP2's generated subclass or peft's wrapper."""
    from transformers import PreTrainedModel

    if hasattr(model, "get_base_model"):  # peft: the merged model is the base model's class
        model = model.get_base_model()
    for cls in type(model).__mro__:
        if issubclass(cls, PreTrainedModel) and not cls.__name__.startswith("FSDP"):
            return cls
    raise SaveError(f"{type(model).__name__} is not a Hugging Face model")


def tied_groups(cls: type, config: PretrainedConfig) -> tuple[dict[str, tuple[int, ...]], list[list[str]]]:
    """Tensor names and shapes of a ``cls`` model built from ``config`` on the meta device (no
    memory), and its names grouped by tensor, in state-dict order (tied weights share one)."""
    with torch.device("meta"):
        model = cls(config)
    state = model.state_dict(keep_vars=True)
    by_tensor: dict[int, list[str]] = {}
    for name, t in state.items():
        by_tensor.setdefault(id(t), []).append(name)
    return {k: tuple(v.shape) for k, v in state.items()}, list(by_tensor.values())


def expected_shapes(directory: Path, cls: type) -> tuple[dict[str, tuple[int, ...]], list[list[str]]]:
    """``tied_groups`` of the ``cls`` model that ``directory``'s config.json describes."""
    return tied_groups(cls, cls.config_class.from_pretrained(str(directory)))


def drop_tied_copies(
    state: dict[str, torch.Tensor], cls: type, config: PretrainedConfig
) -> dict[str, torch.Tensor]:
    """A gathered state dict holds a tied weight once per name (separate copies after the
    gather); keep the first name, as a save of the whole model does."""
    _, groups = tied_groups(cls, config)
    drop = {name for group in groups for name in group[1:] if group[0] in state}
    return {k: v for k, v in state.items() if k not in drop}


def written_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor in the safetensors files of ``directory`` (headers only)."""
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise SaveError(f"{directory}: no .safetensors file was written")
    out: dict[str, tuple[int, ...]] = {}
    for f in files:
        with safe_open(str(f), "pt") as fh:
            for key in fh.keys():
                out[key] = tuple(fh.get_slice(key).get_shape())
    return out


def check_whole(directory: Path, cls: type) -> None:
    """Raise SaveError unless ``directory`` holds every tensor of its ``cls`` model, each with its shape."""
    expected, tied = expected_shapes(directory, cls)
    written = written_shapes(directory)
    problems = []
    for group in tied:
        if not any(n in written for n in group):
            problems.append(f"missing {group[0]} {expected[group[0]]}")
    for name, shape in written.items():
        if name not in expected:
            continue  # extra buffers some checkpoints carry are harmless to loading
        if shape != expected[name]:
            problems.append(f"{name} has shape {shape}, the config says {expected[name]}")
    if problems:
        head = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise SaveError(f"{directory} does not hold a whole model: {head}")


def save_model(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    directory: Path,
    config_updates: dict[str, Any] | None = None,
) -> None:
    """Gather (every process), write (main process) and check ``model`` as a plain Hugging Face
    model with LoRA adapters merged in, plus the tokenizer. Collective; raises SaveError on
    every process if the main process could not write a whole model."""
    from accelerate.utils import broadcast_object_list

    state = gather_state_dict(accelerator, model)
    error = [None]
    if accelerator.is_main_process:
        try:
            unwrapped = accelerator.unwrap_model(model)
            if state is not None:
                state = drop_tied_copies(state, model_class(unwrapped), unwrapped.config)
            write_model(unwrapped, tokenizer, directory, state, config_updates)
            check_whole(directory, model_class(unwrapped))
        except (SaveError, OSError, RuntimeError, ValueError) as err:
            error = [f"{type(err).__name__}: {err}"]
    if accelerator.num_processes > 1:
        broadcast_object_list(error, from_process=0)
    if error[0] is not None:
        raise SaveError(f"saving the model to {directory} failed: {error[0]}")


def write_model(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    directory: Path,
    state: dict | None,
    config_updates: dict | None,
) -> None:
    """``save_pretrained`` of ``model`` (or of ``state``, its gathered weights), merging LoRA."""
    for key, value in (config_updates or {}).items():
        setattr(model.config, key, value)
    if state is None and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if state is not None:
        model.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
    else:
        model.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
