"""Reward-model training from rankings or pairs: `rlhf reward`.

Bradley-Terry over every comparison a ranking implies (losses/bradley_terry.py). One batch
element is one prompt with all K of its responses: each response is scored once and the group's
C(K,2) comparisons share those scores, as in InstructGPT (sec. 3.5). Group losses are averaged
with the records' weights over the whole global batch. With reward.share_prompt the prompt is
read once for its K responses too (one row, a 4D attention mask: rollout/groups.py), whenever that
costs fewer FLOPs than K rows.

After training, the reward statistics of the training responses (mean, std) are stored in the
model's config.json as ``reward_mean`` / ``reward_std`` so that RL can normalise rewards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.data.collators import collate_groups, even_batches
from rlhf.data.rankings import to_group
from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.data.tokenize import tokenize_groups
from rlhf.losses.bradley_terry import group_losses, pairwise_accuracy
from rlhf.models import shared_prompt
from rlhf.models.loading import check_model_path, load_scalar_model, load_tokenizer
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
from rlhf.rollout.experience import head_outputs, score_head
from rlhf.rollout.groups import pack_prompts, packing_pays
from rlhf.sections import DataConfig, ModelConfig, TrainConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from rlhf.data.tokenize import TruncationStats


@dataclass
class RewardSection:
    use_margin: bool = True
    """subtract each pair's `margin` field inside the sigmoid (Llama 2 margin loss)"""
    stats_records: int = 2000
    """training records scored after training for the stored reward mean/std (0: all)"""
    share_prompt: bool = True
    """one row per ranking, prompt + its K responses, with a custom attention mask: the same scores
    as K rows for fewer tokens, used for a batch when it costs fewer FLOPs; false: K rows (for
    models that ignore such masks)"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="runs/reward", lr=5e-5))
    reward: RewardSection = field(default_factory=RewardSection)


def load_groups(
    path: str, what: str, tokenizer: PreTrainedTokenizerBase, cfg: Config
) -> tuple[list[dict], TruncationStats, dict[str, int]]:
    records = load_records(path, "preference", what)
    groups = [to_group(r) for r in records]
    ties = sum(g.n_ties for g in groups)
    tokenized, stats = tokenize_groups(groups, tokenizer, cfg.data.max_length, cfg.data.max_prompt_length)
    if not tokenized:
        raise DataError(f"{what}: none of the {stats.records} records of {path} has a usable comparison")
    n_pairs = sum(len(g["better"]) for g in tokenized)
    return tokenized, stats, {"records": len(records), "comparisons": n_pairs, "tied_pairs_skipped": ties}


def score(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """One scalar per response, read at its last non-pad token: from its own row, or from its
    ranking's packed row (``batch["groups"]``).  Shape: (N,)"""
    g = batch.get("groups")
    if g is not None:
        values = head_outputs(model, score_head(model), g.input_ids, g.attention_mask(model), g.position_ids)
        return values[g.group, g.last]
    return model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).logits.squeeze(-1)


def make_collate(
    model: torch.nn.Module, groups: list[dict], pad_id: int, share_prompt: bool
) -> Callable[[list[dict]], dict]:
    """The batch builder: ``collate_groups``, plus each ranking packed into one row when
    ``share_prompt`` and that costs fewer FLOPs for the batch (ConfigError naming
    reward.share_prompt when ``model`` cannot take the 4D mask ``groups`` need)."""
    base = shared_prompt.base_model(model)
    hidden = getattr(base.config, "hidden_size", None)
    if share_prompt:
        longest = max(len(g["prompt_ids"]) + sum(map(len, g["response_ids"])) for g in groups)
        shared_prompt.check(model, longest, "reward.share_prompt")
        if score_head(model) is None:
            raise ConfigError(
                f"reward.share_prompt: {type(base).__name__} has no `score` or `classifier` head to read at "
                "every position; set reward.share_prompt=false"
            )

    def collate(items: list[dict]) -> dict:
        batch: dict = collate_groups(items, pad_id)
        prompts, responses = [g["prompt_ids"] for g in items], [g["response_ids"] for g in items]
        if share_prompt and hidden and packing_pays(prompts, responses, hidden):
            batch["groups"] = pack_prompts(prompts, responses, pad_id, base.config.pad_token_id)
        return batch

    return collate


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, accelerator: Accelerator, groups: list[dict], collate: Callable, batch_size: int
) -> dict[str, float]:
    """Pairwise accuracy and mean margin (r_better - r_worse) over every comparison of ``groups``."""
    model.eval()
    sums = torch.zeros(3, device=accelerator.device)  # correct, margin sum, pairs
    for items, real in even_batches(groups, accelerator.process_index, accelerator.num_processes, batch_size):
        batch = {k: v.to(accelerator.device) for k, v in collate(items).items()}
        with accelerator.autocast():
            r = score(model, batch).float()
        if not real:
            continue
        n = batch["better"].numel()
        sums += torch.stack(
            [
                pairwise_accuracy(r, batch["better"], batch["worse"]) * n,
                (r[batch["better"]] - r[batch["worse"]]).sum(),
                torch.tensor(float(n), device=r.device),
            ]
        )
    correct, margin, n = accelerator.reduce(sums, "sum").tolist()
    model.train()
    return {"eval_accuracy": correct / max(n, 1), "eval_margin": margin / max(n, 1)}


@torch.no_grad()
def reward_stats(
    model: torch.nn.Module, accelerator: Accelerator, groups: list[dict], collate: Callable, batch_size: int
) -> tuple[float, float]:
    """Mean and std of the model's scores over every response of ``groups``."""
    model.eval()
    scores = []
    for items, real in even_batches(groups, accelerator.process_index, accelerator.num_processes, batch_size):
        batch = {k: v.to(accelerator.device) for k, v in collate(items).items()}
        with accelerator.autocast():
            r = score(model, batch).float()
        if real:
            scores.append(r)
    local = torch.cat(scores) if scores else torch.zeros(0, device=accelerator.device)
    sums = torch.stack(
        [local.sum(), (local**2).sum(), torch.tensor(float(local.numel()), device=local.device)]
    )
    s, sq, n = accelerator.reduce(sums, "sum").tolist()
    mean = s / n
    return mean, max(sq / n - mean**2, 0.0) ** 0.5


def train(cfg: Config, callbacks: list[Callable[[int], None]] | None = None) -> Path:
    """Train a reward model; returns the path of ``final/``. ``callbacks`` run after each step."""
    check_model_path(cfg.model.path)  # fail on a bad path before any work
    accelerator = make_accelerator(cfg.train, lora=cfg.model.lora_r > 0)
    say = accelerator.print

    # 1. data: rankings/pairs -> groups of comparisons
    tokenizer = load_tokenizer(cfg.model.path)
    groups, stats, counts = load_groups(cfg.data.train, "data.train", tokenizer, cfg)
    say(
        f"[reward] data.train: {stats.summary()}; {counts['comparisons']} comparisons, "
        f"{counts['tied_pairs_skipped']} tied pairs skipped"
    )
    eval_groups = load_groups(cfg.data.eval, "data.eval", tokenizer, cfg)[0] if cfg.data.eval else []
    if not cfg.reward.use_margin:
        for g in groups:
            g["margins"] = [0.0] * len(g["margins"])

    # 2. model (and whether it can read a ranking in one row), run directory, optimizer, schedule
    model = load_scalar_model(cfg.model, tokenizer)
    model.train()
    collate = make_collate(model, groups + eval_groups, tokenizer.pad_token_id, cfg.reward.share_prompt)
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)  # created once inputs are valid
    run.write_config(cfg, accelerator)
    run.write_json("data.json", {"train": {**vars(stats), **counts}})
    plan = BatchPlan.build(len(groups), cfg.train, accelerator.num_processes)
    optimizer = make_optimizer(model, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    start, last_ckpt = run.resume(accelerator, cfg.train.resume)

    # 3. train
    bar = progress(plan.total_steps, start, not accelerator.is_local_main_process, "reward")
    t0, pairs_seen = time.perf_counter(), 0
    for step in range(start, plan.total_steps):
        micro_idx = plan.micro_batches(step, accelerator.process_index)
        micro = [collate([groups[i] for i in idx]) for idx in micro_idx]
        w_local = sum(float(b["group_weight"].sum()) for b in micro)
        w_global = accelerator.reduce(torch.tensor(w_local, device=accelerator.device), "sum").clamp(
            min=1e-12
        )
        # undo backward's 1/grad_accum and DDP's 1/processes: the gradient is that of the
        # weighted mean group loss over the global batch
        scale = plan.grad_accum * accelerator.num_processes / w_global
        sums = torch.zeros(4, device=accelerator.device)  # weighted loss, correct pairs, margin sum, pairs
        all_rewards = []
        for batch in micro:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(model), accelerator.autocast():
                rewards = score(model, batch).float()  # (N,)
                losses = group_losses(
                    rewards,
                    batch["better"],
                    batch["worse"],
                    batch["pair_group"],
                    len(batch["group_weight"]),
                    batch["margin"],
                )  # (G,)
                weighted = (losses * batch["group_weight"]).sum()
                accelerator.backward(weighted * scale)
            r = rewards.detach()
            n = batch["better"].numel()
            sums += torch.stack(
                [
                    weighted.detach(),
                    pairwise_accuracy(r, batch["better"], batch["worse"]) * n,
                    (r[batch["better"]] - r[batch["worse"]]).sum(),
                    torch.tensor(float(n), device=r.device),
                ]
            )
            all_rewards.append(r)
        weighted_loss, correct, margin, n_pairs = accelerator.reduce(sums, "sum").tolist()
        loss = weighted_loss / float(w_global)
        grad_norm = optimizer_step(
            accelerator, model, optimizer, scheduler, cfg.train, step + 1, loss, last_ckpt
        )
        pairs_seen += int(n_pairs)
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{correct / max(n_pairs, 1):.3f}")

        if done % cfg.train.log_every == 0 or done == plan.total_steps:
            r = torch.cat(all_rewards)
            record = {
                "step": done,
                "epoch": round(plan.epoch_of(done), 4),
                "loss": loss,
                "accuracy": correct / max(n_pairs, 1),
                "margin": margin / max(n_pairs, 1),
                "reward_mean": float(r.mean()),
                "reward_std": float(r.std()) if r.numel() > 1 else 0.0,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "pairs_per_s": pairs_seen / (time.perf_counter() - t0),
            }
            if cfg.train.eval_every and done % cfg.train.eval_every == 0 and eval_groups:
                record.update(evaluate(model, accelerator, eval_groups, collate, cfg.train.batch_size))
            run.log(record)
        last_ckpt = maybe_checkpoint(run, accelerator, plan, cfg.train, done) or last_ckpt
        for cb in callbacks or []:
            cb(done)
    bar.close()

    # 4. evaluate, measure reward statistics, save
    if eval_groups:
        result = evaluate(model, accelerator, eval_groups, collate, cfg.train.batch_size)
        say(f"[reward] eval: accuracy {result['eval_accuracy']:.3f}, margin {result['eval_margin']:.3f}")
        run.log({"step": plan.total_steps, **result})
    subset = groups[: cfg.reward.stats_records] if cfg.reward.stats_records > 0 else groups
    mean, std = reward_stats(model, accelerator, subset, collate, cfg.train.batch_size)
    say(f"[reward] training-response reward: mean {mean:.4f}, std {std:.4f}")
    save_adapter(run, accelerator, model, tokenizer, cfg.model.path)  # before the final save merges it
    final = run.save_final(accelerator, model, tokenizer, {"reward_mean": mean, "reward_std": std})
    say(f"[reward] saved {final}")
    return final
