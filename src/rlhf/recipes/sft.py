"""Supervised fine-tuning on demonstrations: `rlhf sft`.

Masked next-token NLL on response tokens (the prompt is context, not a target), averaged over
every response token of the global batch, so gradient accumulation and data parallelism give
the gradient of one large batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.data.collators import collate_sft, pack_examples
from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.data.tokenize import IGNORE, tokenize_demonstrations
from rlhf.eval.nll import text_nll
from rlhf.losses.logprobs import masked_kl_to_reference, masked_nll
from rlhf.models.adapters import adapters_off
from rlhf.models.loading import check_model_path, load_policy, load_tokenizer, without_lora
from rlhf.recipes.loop import (
    BatchPlan,
    check_finite,
    make_accelerator,
    make_optimizer,
    make_scheduler,
    maybe_checkpoint,
    optimizer_step,
    progress,
)
from rlhf.recipes.rl_sharding import shard_frozen
from rlhf.recipes.run_adapter import save_adapter
from rlhf.recipes.run_dir import RunDir
from rlhf.sections import DataConfig, ModelConfig, TrainConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from rlhf.data.tokenize import TruncationStats


@dataclass
class SFTSection:
    packing: bool = False
    """concatenate whole examples into rows of data.max_length tokens (less padding)"""
    kl_coef: float = 0.0
    """weight of KL(start || policy) over the whole vocabulary at every response token, added to
    the NLL against forgetting (``losses.logprobs.masked_kl_to_reference``): where the
    demonstrations do not pull, the starting model's next-token distribution holds. The start is
    the policy with its LoRA adapters off (no second copy), or without LoRA a frozen copy of
    model.path; either costs one more forward a micro-batch (0: off, plain NLL). A demonstration's
    optional ``kl_weight`` scales its own response's term (0: a behaviour the start lacks, learnt
    from the NLL alone)"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="runs/sft"))
    sft: SFTSection = field(default_factory=SFTSection)


def load_examples(
    path: str, what: str, tokenizer: PreTrainedTokenizerBase, cfg: Config
) -> tuple[list[dict[str, list[int]]], TruncationStats]:
    records = load_records(path, "demonstration", what)
    examples, stats = tokenize_demonstrations(
        records, tokenizer, cfg.data.max_length, cfg.data.max_prompt_length
    )
    if not examples:
        raise DataError(f"{what}: all {stats.records} records of {path} are longer than data.max_length")
    return examples, stats


def validate(cfg: Config) -> None:
    """ConfigError for SFT settings that cannot work, before any work."""
    if not 0 <= cfg.sft.kl_coef < math.inf:  # also NaN
        raise ConfigError(f"sft.kl_coef must be a finite number >= 0 (0: off), got {cfg.sft.kl_coef}")


def starting_model_logits(
    cfg: Config, accelerator: Accelerator, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase
) -> Callable[[dict], torch.Tensor] | None:
    """The starting model's logits on a batch, for ``sft.kl_coef``; None when it is 0."""
    if cfg.sft.kl_coef == 0:
        return None
    if cfg.model.lora_r > 0:
        peft_model = accelerator.unwrap_model(model)

        @torch.no_grad()
        def start(batch: dict) -> torch.Tensor:
            with adapters_off(peft_model, model):  # the wrapped model, so DDP/DeepSpeed run it
                return logits_of(model, batch)

        return start
    ref = load_policy(without_lora(cfg.model), tokenizer).to(accelerator.device).eval().requires_grad_(False)
    ref = shard_frozen(accelerator, ref)
    return torch.no_grad()(lambda batch: logits_of(ref, batch))


def logits_of(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The model's next-token logits on a collated SFT batch.  Shape: (B, T, V)"""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


def train(cfg: Config, callbacks: list[Callable[[int], None]] | None = None) -> Path:
    """Run SFT; returns the path of ``final/``. ``callbacks`` are called after each step."""
    check_model_path(cfg.model.path)  # fail on a bad path before any work
    validate(cfg)
    accelerator = make_accelerator(cfg.train, lora=cfg.model.lora_r > 0)
    say = accelerator.print

    # 1. data
    tokenizer = load_tokenizer(cfg.model.path)
    examples, stats = load_examples(cfg.data.train, "data.train", tokenizer, cfg)
    say(f"[sft] data.train: {stats.summary()}")
    weighted = sum("kl_weights" in e for e in examples)
    if weighted and cfg.sft.kl_coef == 0:
        say(
            f"[sft] warning: {weighted} demonstrations of data.train carry a kl_weight other than 1, "
            "which does nothing at sft.kl_coef=0"
        )
    eval_examples = load_examples(cfg.data.eval, "data.eval", tokenizer, cfg)[0] if cfg.data.eval else []
    if cfg.sft.packing:
        examples = pack_examples(examples, cfg.data.max_length)
        say(f"[sft] packed into {len(examples)} rows of up to {cfg.data.max_length} tokens")
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)  # created once inputs are valid
    run.write_config(cfg, accelerator)
    run.write_json("data.json", {"train": vars(stats), "rows": len(examples)})

    # 2. model, optimizer, schedule
    model = load_policy(cfg.model, tokenizer)
    model.train()
    plan = BatchPlan.build(len(examples), cfg.train, accelerator.num_processes)
    optimizer = make_optimizer(model, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    start, last_ckpt = run.resume(accelerator, cfg.train.resume)
    reference = starting_model_logits(cfg, accelerator, model, tokenizer)

    def held_out() -> dict[str, float]:  # data.eval's NLL, logged as eval_loss and eval_ppl
        nll = text_nll(model, accelerator, eval_examples, tokenizer.pad_token_id, cfg.train.batch_size)
        return {"eval_loss": nll["nll"], "eval_ppl": nll["ppl"]}

    # 3. train
    bar = progress(plan.total_steps, start, not accelerator.is_local_main_process, "sft")
    t0, tokens_seen = time.perf_counter(), 0
    for step in range(start, plan.total_steps):
        micro = [
            collate_sft([examples[i] for i in idx], tokenizer.pad_token_id)
            for idx in plan.micro_batches(step, accelerator.process_index)
        ]
        n_local = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro)
        n_global = accelerator.reduce(torch.tensor(float(n_local), device=accelerator.device), "sum").clamp(
            min=1
        )
        # backward divides by grad_accum and DDP averages over processes; undo both so the
        # gradient is that of (sum of token NLL over the global batch) / (global token count)
        scale = plan.grad_accum * accelerator.num_processes / n_global
        loss_sum = torch.zeros((), device=accelerator.device)
        kl_sum = torch.zeros((), device=accelerator.device)
        for batch in micro:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(model), accelerator.autocast():
                ref_logits = reference(batch) if reference else None
                logits = logits_of(model, batch)
                nll, _ = masked_nll(logits, batch["labels"])
                objective = nll
                if ref_logits is not None:
                    weights = batch.get("kl_weights")  # demonstrations' kl_weight, per token
                    kl, _ = masked_kl_to_reference(logits, ref_logits, batch["labels"], weights)
                    objective = nll + cfg.sft.kl_coef * kl
                    kl_sum += kl.detach()
                accelerator.backward(objective * scale)
            loss_sum += nll.detach()
        loss = (accelerator.reduce(loss_sum, "sum") / n_global).item()
        kl_to_start = (accelerator.reduce(kl_sum, "sum") / n_global).item() if reference else None
        if kl_to_start is not None:
            check_finite(kl_to_start, step + 1, "KL to the starting model (sft.kl_coef)", last_ckpt)
        grad_norm = optimizer_step(
            accelerator, model, optimizer, scheduler, cfg.train, step + 1, loss, last_ckpt
        )
        tokens_seen += int(n_global.item())
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

        if done % cfg.train.log_every == 0 or done == plan.total_steps:
            elapsed = time.perf_counter() - t0
            record = {
                "step": done,
                "epoch": round(plan.epoch_of(done), 4),
                "loss": loss,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "response_tokens_per_s": tokens_seen / elapsed,
            }
            if kl_to_start is not None:  # token-mean KL(start || policy), by kl_weight; loss stays the NLL
                record["kl_to_start"] = kl_to_start
            if cfg.train.eval_every and done % cfg.train.eval_every == 0 and eval_examples:
                record.update(held_out())
            run.log(record)
        last_ckpt = maybe_checkpoint(run, accelerator, plan, cfg.train, done) or last_ckpt
        for cb in callbacks or []:
            cb(done)
    bar.close()

    # 4. evaluate and save
    if eval_examples:
        result = held_out()
        say(f"[sft] eval: loss {result['eval_loss']:.4f}, ppl {result['eval_ppl']:.2f}")
        run.log({"step": plan.total_steps, **result})
    save_adapter(run, accelerator, model, tokenizer, cfg.model.path)  # before the final save merges it
    final = run.save_final(accelerator, model, tokenizer)
    say(f"[sft] saved {final}")
    return final
