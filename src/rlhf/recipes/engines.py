"""Which scale-out engine a run is under, and the settings the project gives it.

The engine is chosen at launch, by accelerate (``accelerate launch --config_file
configs/accelerate/<engine>.yaml``); the recipes run unchanged on each:

    single   one process
    ddp      data parallel: every process holds the whole model, gradients all-reduced
    fsdp2    torch FSDP2 (``fully_shard``): parameters, gradients and optimizer state sharded
    zero2    DeepSpeed ZeRO-2: gradients and optimizer state partitioned, parameters whole
    zero3    DeepSpeed ZeRO-3: parameters, gradients and optimizer state partitioned

DeepSpeed's own config is filled here from the project's: micro-batch size, gradient
accumulation, clipping and bf16 come from ``train.*``, so no hand-written JSON is needed, and a
DeepSpeed config file that says otherwise is an error naming both values.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rlhf.config import ConfigError
from rlhf.sections import TrainConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator

SHARDED = ("fsdp2", "zero3")
"""engines under which no process holds the whole model: saving gathers it collectively"""


def engine_of(accelerator: Accelerator) -> str:
    """``single``, ``ddp``, ``fsdp2``, ``zero2`` or ``zero3`` (FSDP1 and ZeRO-0/1 are named too)."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        return f"zero{accelerator.state.deepspeed_plugin.zero_stage}"
    if kind == DistributedType.FSDP:
        return "fsdp2" if accelerator.is_fsdp2 else "fsdp1"
    return "single" if accelerator.num_processes == 1 else "ddp"


def is_sharded(accelerator: Accelerator) -> bool:
    """True when parameters are split across processes (every forward and save is collective)."""
    return engine_of(accelerator) in SHARDED


def fill_deepspeed_config(ds: dict, cfg: TrainConfig, num_processes: int) -> dict:
    """Write the project's settings into DeepSpeed config ``ds`` (in place; returned).

    A value the config already holds (from a user's DeepSpeed JSON) must agree with ``train.*``:
    the training loops scale their losses by these numbers, so a silent mismatch would train on
    another batch than the one logged.
    """
    wanted = {
        "train_micro_batch_size_per_gpu": (cfg.batch_size, "train.batch_size"),
        "gradient_accumulation_steps": (cfg.grad_accum, "train.grad_accum"),
        "train_batch_size": (
            cfg.batch_size * cfg.grad_accum * num_processes,
            "train.batch_size x train.grad_accum x processes",
        ),
        # DeepSpeed clips inside its step; 0 turns clipping off there as train.max_grad_norm=0 does here
        "gradient_clipping": (float(cfg.max_grad_norm), "train.max_grad_norm"),
    }
    for key, (value, source) in wanted.items():
        have = ds.get(key, "auto")
        if have not in ("auto", None) and have != value:
            raise ConfigError(
                f"the DeepSpeed config sets {key}={have}, but {source} gives {value}; "
                f"leave {key} out of the DeepSpeed config (rlhf fills it from train.*)"
            )
        ds[key] = value
    bf16 = cfg.mixed_precision == "bf16"
    if ds.get("fp16", {}).get("enabled") in (True, "true"):
        raise ConfigError(
            "the DeepSpeed config enables fp16; rlhf trains in float32 or bf16 (train.mixed_precision)"
        )
    have_bf16 = ds.get("bf16", {}).get("enabled", "auto")
    if have_bf16 not in ("auto", None) and bool(have_bf16) != bf16:
        raise ConfigError(
            f"the DeepSpeed config sets bf16.enabled={have_bf16}, "
            f"but train.mixed_precision={cfg.mixed_precision}"
        )
    ds["bf16"] = {**ds.get("bf16", {}), "enabled": bf16}
    zero = ds.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        # the final model is gathered from the partitions at save time; without this DeepSpeed
        # refuses to gather, and a save would hold empty tensors
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return ds


def check_supported(accelerator: Accelerator, lora: bool) -> None:
    """Combinations the project does not run; a clear error before any work."""
    engine = engine_of(accelerator)
    if engine == "fsdp1":
        raise ConfigError(
            "FSDP version 1 is not supported: set fsdp_version: 2 in the accelerate config "
            "(configs/accelerate/fsdp2.yaml)"
        )
    if lora and engine in SHARDED:
        raise ConfigError(
            f"model.lora_r > 0 under {engine} is not supported (merging adapters into sharded "
            "weights); use DDP or ZeRO-2 (configs/accelerate/zero2.yaml) for LoRA"
        )


def check_process_count(num_processes: int, env: dict[str, str] | None = None) -> None:
    """A launch that runs fewer processes than it asked for is an error, not a quiet slow run.

    Two ways it happens: `accelerate launch --num_processes N` on a machine without GPUs and
    without --multi_gpu/--cpu starts ONE process (accelerate's simple launcher, which still sets
    MASTER_ADDR because N > 1); and torchrun-started processes that accelerate does not join into
    a process group (no backend) each believe they are alone (WORLD_SIZE says otherwise).
    """
    env = os.environ if env is None else env
    world = env.get("WORLD_SIZE")
    if world is not None and world.isdigit() and int(world) != num_processes:
        raise ConfigError(
            f"the launcher started {world} processes (WORLD_SIZE={world}) but this one runs as 1 of "
            f"{num_processes}: each would train alone. On a machine without GPUs launch with "
            "`accelerate launch --multi_gpu --num_processes N` and ACCELERATE_USE_CPU=1 "
            "(see docs/distributed.md)"
        )
    simple_launcher = "ACCELERATE_USE_CPU" in env and "LOCAL_RANK" not in env
    if simple_launcher and "MASTER_ADDR" in env and num_processes == 1:
        raise ConfigError(
            "accelerate launch was asked for more than one process but started only this one (on a "
            "machine without GPUs, --num_processes alone falls back to one process). Launch with "
            "`accelerate launch --multi_gpu --num_processes N` and ACCELERATE_USE_CPU=1, or with "
            "--config_file configs/accelerate/<engine>.yaml on GPUs (see docs/distributed.md)"
        )
