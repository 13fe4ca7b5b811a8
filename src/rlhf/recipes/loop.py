"""Pieces every training loop shares: the batch plan, accelerator, optimizer and schedule.

The batch plan decides which records every optimizer step sees from ``(seed, step)`` alone: the
data is an endless stream of seeded permutations (one per epoch), and step s takes the s-th
global batch of it. So a resumed run sees exactly the records an uninterrupted one would, and
a run on 2 processes sees the same global batches as one process with the same global batch.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.recipes import trackers
from rlhf.sections import TrainConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from rlhf.progress import PlainProgress
    from rlhf.recipes.run_dir import RunDir


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); nothing bad has been written."""


def exact_div(a: int, b: int, what: str) -> int:
    if b <= 0 or a % b:
        raise ConfigError(f"{what}: {a} is not divisible by {b}")
    return a // b


@functools.lru_cache(maxsize=2)
def _epoch_order(n_records: int, seed: int, epoch: int) -> list[int]:
    """The seeded record order of one epoch; cached, since every step of the epoch reads it."""
    order = list(range(n_records))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


@dataclass
class BatchPlan:
    n_records: int
    batch_size: int
    """per device per micro-batch"""
    grad_accum: int
    num_processes: int
    seed: int
    total_steps: int

    @classmethod
    def build(cls, n_records: int, cfg: TrainConfig, num_processes: int) -> BatchPlan:
        if cfg.batch_size < 1 or cfg.grad_accum < 1:
            raise ConfigError("train.batch_size and train.grad_accum must be >= 1")
        global_batch = cfg.batch_size * cfg.grad_accum * num_processes
        if cfg.max_steps > 0:
            total = cfg.max_steps
        elif cfg.epochs > 0:
            total = max(1, math.ceil(cfg.epochs * n_records / global_batch))
        else:
            raise ConfigError("set train.max_steps > 0 or train.epochs > 0")
        return cls(n_records, cfg.batch_size, cfg.grad_accum, num_processes, cfg.seed, total)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.num_processes

    def epoch_of(self, step: int) -> float:
        return step * self.global_batch / self.n_records

    def _permutation(self, epoch: int) -> list[int]:
        return _epoch_order(self.n_records, self.seed, epoch)

    def global_indices(self, step: int) -> list[int]:
        """Record indices of optimizer step ``step`` (0-based), across all processes."""
        start = step * self.global_batch
        out: list[int] = []
        epoch, offset = divmod(start, self.n_records)
        while len(out) < self.global_batch:
            perm = self._permutation(epoch)
            take = perm[offset : offset + self.global_batch - len(out)]
            out += take
            epoch, offset = epoch + 1, 0
        return out

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """This process's ``grad_accum`` micro-batches of step ``step``."""
        per_rank = self.batch_size * self.grad_accum
        mine = self.global_indices(step)[rank * per_rank : (rank + 1) * per_rank]
        return [mine[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.grad_accum)]


def make_accelerator(cfg: TrainConfig, lora: bool = False) -> Accelerator:
    """The run's Accelerator, on the engine `accelerate launch` chose (recipes/engines.py), with
    DeepSpeed's settings filled from ``cfg``; a launch that runs fewer processes than it asked
    for, or an engine setting the project does not run, is an error here, before any work."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    from rlhf.recipes.engines import check_process_count, check_supported, fill_deepspeed_config

    # accelerate keeps its settings process-wide and refuses a second Accelerator with another
    # mixed_precision; a second run in one process (sft then reward, or tests) must start fresh.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        **trackers.accelerator_kwargs(cfg.report_to, cfg.output_dir),
    )
    check_process_count(accelerator.num_processes)
    check_supported(accelerator, lora)
    if accelerator.state.deepspeed_plugin is not None:
        fill_deepspeed_config(
            accelerator.state.deepspeed_plugin.deepspeed_config, cfg, accelerator.num_processes
        )
    set_seed(cfg.seed)
    return accelerator


def sampling_accelerator(seed: int) -> Accelerator:
    """accelerate's process and device, for commands that only sample and score."""
    return make_accelerator(TrainConfig(output_dir="unused", seed=seed))


def gather_in_order(accelerator: Accelerator, rows: list[dict]) -> list[dict]:
    """Every process's rows (each with its record's ``index``), in record order."""
    if accelerator.num_processes == 1:
        return rows
    from accelerate.utils import gather_object

    return sorted(gather_object(rows), key=lambda row: row["index"])


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-d parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # no empty group (LoRA trains only matrices): DeepSpeed drops empty groups, and the schedule,
    # built on the groups before, would then step one group more than the optimizer holds
    groups = [g for g in groups if g["params"]]
    if len(cfg.adam_betas) != 2:
        raise ConfigError(f"train.adam_betas must be two numbers, got {cfg.adam_betas}")
    # fused AdamW: one kernel for all parameters; on CPU torch otherwise loops over them in
    # Python (it defaults to foreach/fused only on CUDA): 21 -> 7 ms a step for 10M parameters
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), fused=fused)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    from transformers import get_scheduler

    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[cfg.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps)


def check_finite(value: float, step: int, what: str, last_checkpoint: Path | None) -> None:
    if not math.isfinite(value):
        where = (
            f"the last good checkpoint is {last_checkpoint}"
            if last_checkpoint
            else "no checkpoint was written"
        )
        raise TrainingError(
            f"{what} is {value} at step {step}: stopping before the optimizer step, so no bad weights are "
            f"saved; {where}. Try a lower train.lr, train.max_grad_norm > 0, or check the data."
        )


def progress(total: int, initial: int, disable: bool, desc: str) -> PlainProgress | tqdm:
    """tqdm on a terminal, a plain line every tenth of the run in a log file (rlhf/progress.py)."""
    from rlhf.progress import progress as make

    return make(total, initial, disable, desc)


def optimizer_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    step: int,
    loss: float,
    last_checkpoint: Path | None,
) -> float:
    """Clip, then step the optimizer and schedule, after the gradients of one global batch.

    A non-finite loss or gradient norm raises TrainingError *before* the weights change.
    Returns the gradient norm before clipping.
    """
    check_finite(loss, step, "training loss", last_checkpoint)
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf")))
    check_finite(grad_norm, step, "gradient norm", last_checkpoint)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def maybe_checkpoint(
    run: RunDir, accelerator: Accelerator, plan: BatchPlan, cfg: TrainConfig, done: int
) -> Path | None:
    """Save a checkpoint after step ``done`` if one is due (never after the last step: final/ is)."""
    if cfg.save_every and done % cfg.save_every == 0 and done < plan.total_steps:
        return run.save_checkpoint(accelerator, done, {"epoch": plan.epoch_of(done)}, cfg.keep_checkpoints)
    return None
