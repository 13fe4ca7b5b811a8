"""Direct preference optimisation and its family (DPO, cDPO, IPO, hinge, SimPO, RPO's NLL term,
KTO on unpaired feedback): `rlhf dpo`.

No reward model and no sampling: the policy is trained on preference pairs against the
log-probabilities a frozen reference gives the same responses (losses/dpo.py). A ranking of K
responses is expanded to its C(K,2) pairs (ties are skipped and counted); each pair carries its
record's weight, and pair losses are averaged with those weights over the whole global batch, so
gradient accumulation and data parallelism give the gradient of one large batch. A pair's
``margin`` field is not used (it belongs to the reward-model loss). With ``dpo.loss=kto`` the
records are unpaired feedback ``{prompt, completion, label}`` (rlhf.data.unpaired): each becomes a
row whose "chosen" side is the completion and whose "rejected" side is another prompt's completion,
the sample KTO's reference point is estimated from, so the same collator, forward and references
serve it.

Speed: chosen and rejected go through the model in ONE forward, by default in one row per pair
that holds the prompt once (``dpo_rows.PairCollator``: a 4D attention mask keeps the two responses apart);
the LM head runs only on the positions that predict response tokens (``logits_to_keep``);
log-probs come from logsumexp + gather. With ``dpo.reference=precompute`` (the default) the
reference is one no-grad pass over the data before training, cached in the run directory, so a
training step is the policy's forward and backward only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from rlhf.config import ConfigError
from rlhf.data.collators import even_batches
from rlhf.data.rankings import to_group
from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.data.tokenize import tokenize_groups
from rlhf.data.unpaired import tokenize_unpaired
from rlhf.losses.dpo import (
    DPO_LOSSES,
    REFERENCE_FREE_LOSSES,
    SMOOTHED_LOSSES,
    STAT_NAMES,
    UNPAIRED_LOSSES,
    add_nll,
    pair_stats,
    summarize,
)
from rlhf.models.loading import check_model_path, load_policy, load_tokenizer
from rlhf.recipes.dpo_reference import REFERENCES, ReferenceSpec, RefFn
from rlhf.recipes.dpo_rows import PairCollator, forward_logps, make_collator, split_pairs, to_device
from rlhf.recipes.loop import (
    BatchPlan,
    make_accelerator,
    make_optimizer,
    make_scheduler,
    maybe_checkpoint,
    optimizer_step,
    progress,
)
from rlhf.recipes.run_adapter import save_adapter
from rlhf.recipes.run_dir import RunDir
from rlhf.sections import DataConfig, ModelConfig, TrainConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from rlhf.losses.dpo import DPOOutput, PairLogps

SUMMARY = f"direct preference optimisation (dpo.loss={'|'.join(DPO_LOSSES)})"
"""the line `rlhf --help` shows, from the loss registry"""


@dataclass
class DPOSection:
    loss: str = "sigmoid"
    """sigmoid (DPO) | cdpo (DPO with label smoothing) | ipo | hinge (SLiC) | simpo (no reference) |
    kto (unpaired feedback {prompt, completion, label}); see docs/dpo.md"""
    beta: float = 0.1
    """KL strength: implicit reward = beta * log(pi / pi_ref); IPO's tau; hinge margin = 1/beta"""
    label_smoothing: float = 0.0
    """cdpo only: assumed share of flipped preference labels, in (0, 0.5)"""
    gamma: float = 0.0
    """simpo only: target reward margin (SimPO eq. 6). SimPO's rewards are per-token means, so its
    beta is larger than DPO's (the paper's are 2 to 10)"""
    desirable_weight: float = 1.0
    """kto only: lambda_D, the weight of desirable completions (KTO eq. 8; the paper advises
    lambda_D n_D / (lambda_U n_U) in [1, 4/3], n the counts of each label)"""
    undesirable_weight: float = 1.0
    """kto only: lambda_U, the weight of undesirable completions"""
    nll_coef: float = 0.0
    """alpha of RPO (Pang et al. 2024): the chosen response's per-token NLL, times alpha, is added to
    every pair's loss, so that the chosen answers stay likely (0: off)"""
    reference: Literal["precompute", "frozen", "adapters_off", "none"] = "precompute"
    """reference log-probs: precompute (once before training, cached in the run directory),
    frozen (a frozen copy in memory), adapters_off (the LoRA policy with its adapters disabled),
    none (reference-free losses, simpo; with those the default precompute means none)"""
    ref_model: str = ""
    """reference model directory (empty: the initial policy, model.path); not with adapters_off"""
    share_prompt: bool = True
    """one row per pair, prompt + chosen + rejected, with a custom attention mask: the same
    log-probs as two rows for fewer tokens; false: two rows (for models that ignore such masks)"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="runs/dpo", lr=5e-6))
    dpo: DPOSection = field(default_factory=DPOSection)


def check_config(cfg: Config) -> None:
    """Reject combinations that cannot work, naming the keys, before any work is done."""
    d = cfg.dpo
    if d.loss not in DPO_LOSSES:
        raise ConfigError(f"dpo.loss: unknown loss {d.loss!r}; choose one of {', '.join(DPO_LOSSES)}")
    if d.beta <= 0:
        raise ConfigError(f"dpo.beta must be > 0, got {d.beta}")
    if d.loss in SMOOTHED_LOSSES and not 0 < d.label_smoothing < 0.5:
        raise ConfigError(f"dpo.loss={d.loss} needs dpo.label_smoothing in (0, 0.5), got {d.label_smoothing}")
    if d.loss not in SMOOTHED_LOSSES and d.label_smoothing:
        raise ConfigError(f"dpo.label_smoothing is only read by dpo.loss={'|'.join(SMOOTHED_LOSSES)}")
    if d.loss != "simpo" and d.gamma:
        raise ConfigError(f"dpo.gamma is only read by dpo.loss=simpo (got dpo.loss={d.loss})")
    weights = (d.desirable_weight, d.undesirable_weight)
    if d.loss in UNPAIRED_LOSSES and min(weights) <= 0:
        raise ConfigError(f"dpo.desirable_weight and dpo.undesirable_weight must be > 0, got {weights}")
    if d.loss not in UNPAIRED_LOSSES and weights != (1.0, 1.0):
        raise ConfigError(
            "dpo.desirable_weight and dpo.undesirable_weight are only read by "
            f"dpo.loss={'|'.join(UNPAIRED_LOSSES)}"
        )
    if d.loss in UNPAIRED_LOSSES and d.nll_coef:
        raise ConfigError(
            f"dpo.nll_coef: dpo.loss={d.loss} has no chosen response to keep likely (its completions "
            "include undesirable ones)"
        )
    if d.nll_coef < 0:
        raise ConfigError(f"dpo.nll_coef must be >= 0, got {d.nll_coef}")
    if d.loss in REFERENCE_FREE_LOSSES and (d.reference not in ("precompute", "none") or d.ref_model):
        raise ConfigError(
            f"dpo.loss={d.loss} reads no reference, so dpo.reference={d.reference}"
            + (f" and dpo.ref_model={d.ref_model}" if d.ref_model else "")
            + " would load or run one for nothing; leave them unset"
        )
    if d.reference == "none" and d.loss not in REFERENCE_FREE_LOSSES:
        raise ConfigError(
            f"dpo.reference=none: dpo.loss={d.loss} compares the policy with a reference; "
            f"the losses without one are {', '.join(REFERENCE_FREE_LOSSES)}"
        )
    if d.reference == "adapters_off" and cfg.model.lora_r <= 0:
        raise ConfigError(
            "dpo.reference=adapters_off needs LoRA (model.lora_r > 0): the reference is the policy with "
            "its adapters disabled; without LoRA use dpo.reference=precompute or frozen"
        )
    if d.reference == "adapters_off" and d.ref_model:
        raise ConfigError(
            "dpo.ref_model cannot be set with dpo.reference=adapters_off (the base model is it)"
        )
    if d.ref_model:
        check_model_path(d.ref_model, "dpo.ref_model")


# ---------------------------------------------------------------- data


def load_unpaired(
    path: str, what: str, tokenizer: PreTrainedTokenizerBase, cfg: Config
) -> tuple[list[dict], dict]:
    """Unpaired feedback records -> rows laid out as pairs (rlhf.data.unpaired), for KTO."""
    records = load_records(path, "unpaired", what)
    rows, stats = tokenize_unpaired(records, tokenizer, cfg.data.max_length, cfg.data.max_prompt_length)
    if not rows:
        raise DataError(f"{what}: none of the {stats.records} records of {path} fits data.max_length")
    liked = sum(int(r["desirable"]) for r in rows)
    return rows, {**vars(stats), "pairs": len(rows), "tied_pairs_skipped": 0,
                  "desirable": liked, "undesirable": len(rows) - liked}  # fmt: skip


def load_pairs(
    path: str, what: str, tokenizer: PreTrainedTokenizerBase, cfg: Config
) -> tuple[list[dict], dict]:
    """Pair and ranking records -> tokenized pairs ``{prompt_ids, chosen_ids, rejected_ids, weight}``.

    Each record is tokenized once (a ranking's prompt and responses are shared by its pairs) with
    the truncation rule of rlhf.data.tokenize, then expanded to its comparisons. With an unpaired
    loss (KTO) the records are unpaired feedback instead (``load_unpaired``).
    """
    if cfg.dpo.loss in UNPAIRED_LOSSES:
        return load_unpaired(path, what, tokenizer, cfg)
    records = load_records(path, "preference", what)
    groups = [to_group(r) for r in records]
    tokenized, stats = tokenize_groups(groups, tokenizer, cfg.data.max_length, cfg.data.max_prompt_length)
    pairs = [
        {
            "prompt_ids": g["prompt_ids"],
            "chosen_ids": g["response_ids"][b],
            "rejected_ids": g["response_ids"][w],
            "weight": g["weight"],
        }
        for g in tokenized
        for b, w in zip(g["better"], g["worse"])
    ]
    if not pairs:
        raise DataError(f"{what}: none of the {stats.records} records of {path} has a usable comparison")
    ties = sum(g.n_ties for g in groups)
    return pairs, {**vars(stats), "pairs": len(pairs), "tied_pairs_skipped": ties}


# ---------------------------------------------------------------- training


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    accelerator: Accelerator,
    pairs: list[dict],
    ref_fn: RefFn,
    loss_fn: Callable[[PairLogps], DPOOutput],
    cfg: Config,
    collate: PairCollator,
) -> dict:
    """eval_* metrics over every pair of ``pairs``, split across processes."""
    model.eval()
    sums = torch.zeros(len(STAT_NAMES), device=accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    for items, real in even_batches(pairs, rank, world, cfg.train.batch_size):
        batch = to_device(collate(items), accelerator.device)
        with accelerator.autocast():
            logps, counts = forward_logps(model, batch)
            lp = split_pairs(logps, ref_fn(batch).float(), counts, batch.get("desirable"))
            out = loss_fn(lp)
        if real:
            sums += pair_stats(out, lp, batch["weight"])
    model.train()
    return summarize(accelerator.reduce(sums, "sum"), "eval_")


def train(cfg: Config, callbacks: list[Callable[[int], None]] | None = None) -> Path:
    """Train a policy with the DPO family; returns the path of ``final/``. ``callbacks`` run after
    each step."""
    check_config(cfg)
    check_model_path(cfg.model.path)  # fail on a bad path before any work
    accelerator = make_accelerator(cfg.train, lora=cfg.model.lora_r > 0)
    say = accelerator.print
    d = cfg.dpo

    params = {"beta": d.beta, "label_smoothing": d.label_smoothing, "gamma": d.gamma}
    if d.loss in UNPAIRED_LOSSES:
        params.update(desirable_weight=d.desirable_weight, undesirable_weight=d.undesirable_weight)

    def loss_fn(lp: PairLogps) -> DPOOutput:
        return add_nll(DPO_LOSSES[d.loss](lp, **params), lp, d.nll_coef)

    # 1. data: pairs and rankings -> tokenized pairs
    tokenizer = load_tokenizer(cfg.model.path)
    pairs, counts = load_pairs(cfg.data.train, "data.train", tokenizer, cfg)
    say(f"[dpo] data.train: {counts['records']} records -> {counts['pairs']} pairs; "
        f"{counts['truncated']} prompts truncated, {counts['dropped']} dropped as too long, "
        f"{counts['tied_pairs_skipped']} tied pairs skipped")  # fmt: skip
    eval_pairs = load_pairs(cfg.data.eval, "data.eval", tokenizer, cfg)[0] if cfg.data.eval else []

    # 2. policy, optimizer, schedule; then the reference, from the initial policy
    model = load_policy(cfg.model, tokenizer)
    model.train()
    longest = max(
        len(p["prompt_ids"]) + len(p["chosen_ids"]) + len(p["rejected_ids"]) for p in pairs + eval_pairs
    )
    collate = make_collator(cfg.dpo.share_prompt, model, tokenizer.pad_token_id, longest)
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)  # created once inputs are valid
    run.write_config(cfg, accelerator)
    run.write_json("data.json", {"train": counts})
    plan = BatchPlan.build(len(pairs), cfg.train, accelerator.num_processes)
    optimizer = make_optimizer(model, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    splits = {"train": pairs, "eval": eval_pairs} if eval_pairs else {"train": pairs}
    reference = "none" if d.loss in REFERENCE_FREE_LOSSES else d.reference
    ref_fn = REFERENCES[reference](reference_spec(cfg), accelerator, model, tokenizer, run, splits, collate)
    start, last_ckpt = run.resume(accelerator, cfg.train.resume)

    # 3. train
    bar = progress(plan.total_steps, start, not accelerator.is_local_main_process, "dpo")
    t0, pairs_seen = time.perf_counter(), 0
    for step in range(start, plan.total_steps):
        micro = [
            collate([pairs[i] for i in idx]) for idx in plan.micro_batches(step, accelerator.process_index)
        ]
        w_local = sum(float(b["weight"].sum()) for b in micro)
        w_global = accelerator.reduce(torch.tensor(w_local, device=accelerator.device), "sum").clamp(
            min=1e-12
        )
        # undo backward's 1/grad_accum and DDP's 1/processes: the gradient is that of the
        # weighted mean pair loss over the global batch
        scale = plan.grad_accum * accelerator.num_processes / w_global
        sums = torch.zeros(len(STAT_NAMES), device=accelerator.device)
        for batch in micro:
            batch = to_device(batch, accelerator.device)
            with accelerator.accumulate(model), accelerator.autocast():
                ref = ref_fn(batch).float()  # (2B,) no gradient
                logps, n_tokens = forward_logps(model, batch)  # (2B,) one forward for both sides
                lp = split_pairs(logps, ref, n_tokens, batch.get("desirable"))
                out = loss_fn(lp)  # (B,) losses and rewards
                weighted = (out.losses * batch["weight"]).sum()
                accelerator.backward(weighted * scale)
            sums += pair_stats(out, lp, batch["weight"])
        metrics = summarize(accelerator.reduce(sums, "sum"))
        grad_norm = optimizer_step(
            accelerator, model, optimizer, scheduler, cfg.train, step + 1, metrics["loss"], last_ckpt
        )
        pairs_seen += plan.global_batch
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics['accuracy']:.3f}")

        if done % cfg.train.log_every == 0 or done == plan.total_steps:
            record = {"step": done, "epoch": round(plan.epoch_of(done), 4), **metrics}
            record.update(lr=scheduler.get_last_lr()[0], grad_norm=float(grad_norm),
                          pairs_per_s=pairs_seen / (time.perf_counter() - t0))  # fmt: skip
            if cfg.train.eval_every and done % cfg.train.eval_every == 0 and eval_pairs:
                record.update(evaluate(model, accelerator, eval_pairs, ref_fn, loss_fn, cfg, collate))
            run.log(record)
        last_ckpt = maybe_checkpoint(run, accelerator, plan, cfg.train, done) or last_ckpt
        for cb in callbacks or []:
            cb(done)
    bar.close()

    # 4. evaluate and save
    if eval_pairs:
        result = evaluate(model, accelerator, eval_pairs, ref_fn, loss_fn, cfg, collate)
        say(f"[dpo] eval: loss {result['eval_loss']:.4f}, accuracy {result['eval_accuracy']:.3f}, "
            f"margin {result['eval_margin']:.3f}")  # fmt: skip
        run.log({"step": plan.total_steps, **result})
    save_adapter(run, accelerator, model, tokenizer, cfg.model.path)  # before the final save merges it
    final = run.save_final(accelerator, model, tokenizer)
    say(f"[dpo] saved {final}")
    return final


def reference_spec(cfg: Config) -> ReferenceSpec:
    """The reference model of a run: dpo.ref_model, or the policy's start (model.path), without LoRA."""
    d = cfg.dpo
    return ReferenceSpec(
        replace(cfg.model, path=d.ref_model or cfg.model.path, lora_r=0),
        "dpo.ref_model" if d.ref_model else "model.path",
        bool(d.ref_model),
        cfg.train.batch_size,
        cfg.train.mixed_precision,
    )
