"""Direct preference optimisation and its family (DPO, cDPO, IPO, hinge): `rlhf dpo`.

No reward model and no sampling: the policy is trained on preference pairs against the
log-probabilities a frozen reference gives the same responses (losses/dpo.py). A ranking of K
responses is expanded to its C(K,2) pairs (ties are skipped and counted); each pair carries its
record's weight, and pair losses are averaged with those weights over the whole global batch, so
gradient accumulation and data parallelism give the gradient of one large batch. A pair's
``margin`` field is not used (it belongs to the reward-model loss).

Speed: chosen and rejected go through the model in ONE forward, by default in one row per pair
that holds the prompt once (``PairCollator``: a 4D attention mask keeps the two responses apart);
the LM head runs only on the positions that predict response tokens (``logits_to_keep``);
log-probs come from logsumexp + gather. With ``dpo.reference=precompute`` (the default) the
reference is one no-grad pass over the data before training, cached in the run directory, so a
training step is the policy's forward and backward only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from rlhf.config import ConfigError
from rlhf.data.collators import IGNORE, pad
from rlhf.data.rankings import to_group
from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.data.tokenize import tokenize_groups
from rlhf.losses.dpo import (
    DPO_LOSSES,
    SMOOTHED_LOSSES,
    STAT_NAMES,
    PairLogps,
    pair_stats,
    sequence_logps,
    summarize,
)
from rlhf.models.loading import check_model_path, load_policy, load_tokenizer, save_pretrained
from rlhf.recipes.loop import (
    BatchPlan,
    make_accelerator,
    make_optimizer,
    make_scheduler,
    maybe_checkpoint,
    optimizer_step,
    progress,
)
from rlhf.recipes.run_dir import RunDir
from rlhf.sections import DataConfig, ModelConfig, TrainConfig

REF_CACHE = "reference_logps.safetensors"
RefFn = Callable[[dict], torch.Tensor]
"""batch -> reference log-probs of its 2B rows (chosen then rejected), no gradient"""


@dataclass
class DPOSection:
    loss: str = "sigmoid"
    """sigmoid (DPO) | cdpo (DPO with label smoothing) | ipo | hinge (SLiC); see docs/dpo.md"""
    beta: float = 0.1
    """KL strength: implicit reward = beta * log(pi / pi_ref); IPO's tau; hinge margin = 1/beta"""
    label_smoothing: float = 0.0
    """cdpo only: assumed share of flipped preference labels, in (0, 0.5)"""
    reference: Literal["precompute", "frozen", "adapters_off"] = "precompute"
    """reference log-probs: precompute (once before training, cached in the run directory),
    frozen (a frozen copy in memory), adapters_off (the LoRA policy with its adapters disabled)"""
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


def load_pairs(path: str, what: str, tokenizer, cfg: Config) -> tuple[list[dict], dict]:
    """Pair and ranking records -> tokenized pairs ``{prompt_ids, chosen_ids, rejected_ids, weight}``.

    Each record is tokenized once (a ranking's prompt and responses are shared by its pairs) with
    the truncation rule of rlhf.data.tokenize, then expanded to its comparisons.
    """
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


@dataclass(frozen=True)
class PairCollator:
    """B tokenized pairs -> one model batch holding both responses of every pair.

    share_prompt: one row per pair, prompt + chosen + rejected, with a 4D attention mask in
    which the rejected tokens see the prompt but not the chosen ones, and position ids that
    restart after the prompt: the same log-probs as two rows, for fewer tokens (the prompt is
    run once). Otherwise: 2B rows, prompt + response, with a 2D padding mask.

    Returns input_ids, position_ids (R, T); attention_mask (R, T) or (R, 1, T, T); targets
    (R, T, S), see losses.dpo.sequence_logps; weight (B,); ref_logps (2B,) once precomputed;
    logits_to_keep: the trailing positions that predict a target, the only ones the LM head
    must score (0: all).
    """

    pad_id: int
    share_prompt: bool = True
    float_mask: torch.dtype | None = None
    """dtype of an additive 4D mask (eager attention adds it to the scores); None: boolean (sdpa)"""
    keep: bool = True
    """the model takes transformers' logits_to_keep"""
    left: bool = False

    def __call__(self, pairs: list[dict]) -> dict:
        sides = ["chosen_ids", "rejected_ids"]
        if self.share_prompt:
            rows = [[p["prompt_ids"]] + [p[k] for k in sides] for p in pairs]
        else:
            rows = [[p["prompt_ids"], p[k]] for k in sides for p in pairs]
        ids, seg, pos, tgt = [], [], [], [[] for _ in rows[0][1:]]
        for prompt, *responses in rows:
            n = len(prompt)
            r_ids, r_seg, r_pos, r_tgt = list(prompt), [0] * n, list(range(n)), []
            for s, resp in enumerate(responses):
                # position t predicts token t + 1, but every response's first token is predicted by
                # the prompt's last position (none when the prompt is empty: that token is not scored)
                before = [n - 1, *range(len(r_ids), len(r_ids) + len(resp) - 1)]
                r_tgt.append(dict(zip(before, resp)))
                r_ids, r_seg, r_pos = (
                    r_ids + resp,
                    r_seg + [s + 1] * len(resp),
                    r_pos + [*range(n, n + len(resp))],
                )
            ids.append(r_ids)
            seg.append(r_seg)
            pos.append(r_pos)
            for s, t in enumerate(r_tgt):
                tgt[s].append([t.get(i, IGNORE) for i in range(len(r_ids))])
        targets = torch.stack([pad(t, IGNORE, self.left) for t in tgt], -1)  # (R, T, S)
        first = int((targets != IGNORE).any(-1).any(0).int().argmax())  # first column with a target
        batch = {
            "input_ids": pad(ids, self.pad_id, self.left),
            "position_ids": pad(pos, 0, self.left),
            "attention_mask": self.mask(pad(seg, -1, self.left)),
            "targets": targets,
            "weight": torch.tensor([float(p["weight"]) for p in pairs]),
            "logits_to_keep": targets.size(1) - first if self.keep else 0,
        }
        if "ref" in pairs[0]:
            batch["ref_logps"] = torch.tensor([p["ref"][0] for p in pairs] + [p["ref"][1] for p in pairs])
        return batch

    def mask(self, seg: torch.Tensor) -> torch.Tensor:
        """Attention mask from segment ids (0 prompt, 1.. responses, -1 padding).  Shape: (R, T) ->
        (R, T) or (R, 1, T, T)"""
        if not self.share_prompt:
            return (seg >= 0).long()  # the model builds the causal mask (and keeps its fast paths)
        t = seg.size(1)
        q, k = seg[:, :, None], seg[:, None, :]
        # causal; a response sees the prompt and itself, never the other response; padding sees
        # itself too, so that no softmax row is empty (its output is never read)
        allowed = torch.ones(t, t, dtype=torch.bool).tril() & (k >= 0) & ((k == q) | (k == 0))
        allowed = (allowed | torch.eye(t, dtype=torch.bool))[:, None]
        if self.float_mask is None:
            return allowed
        return torch.zeros(allowed.shape, dtype=self.float_mask).masked_fill(
            ~allowed, torch.finfo(self.float_mask).min
        )


def make_collator(cfg: Config, model, pad_id: int, longest: int) -> PairCollator:
    """The collator for ``model`` (unwrapped): mask kind from its attention, whether it takes
    logits_to_keep; a shared-prompt row must not outgrow a sliding attention window, which a
    custom mask would bypass."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    conf = base.config
    window = getattr(conf, "sliding_window", None) if getattr(conf, "use_sliding_window", True) else None
    if cfg.dpo.share_prompt and (
        conf._attn_implementation not in ("eager", "sdpa") or (window and longest > window)
    ):
        raise ConfigError(
            f"dpo.share_prompt needs eager or sdpa attention and rows within any sliding window "
            f"({conf._attn_implementation}, window {window}, longest row {longest}): set dpo.share_prompt=false"
        )
    eager = conf._attn_implementation == "eager"
    return PairCollator(
        pad_id,
        cfg.dpo.share_prompt,
        base.get_input_embeddings().weight.dtype if eager else None,
        "logits_to_keep" in inspect.signature(base.forward).parameters,
    )


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def forward_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and response token counts, the B chosen then the B rejected.

    Shape: (2B,), (2B,)
    """
    keep = {"logits_to_keep": batch["logits_to_keep"]} if batch["logits_to_keep"] else {}
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,  # a training forward: building a KV cache is wasted work
        **keep,
    ).logits  # (R, K, V)
    sums, counts = sequence_logps(logits, batch["targets"][:, -logits.size(1) :])  # (R, S)
    return sums.T.reshape(-1), counts.T.reshape(-1)


def split_pairs(logps: torch.Tensor, ref: torch.Tensor, counts: torch.Tensor) -> PairLogps:
    b = logps.size(0) // 2
    return PairLogps(logps[:b], logps[b:], ref[:b], ref[b:], counts[:b], counts[b:])


# ---------------------------------------------------------------- reference


def _ref_model_cfg(cfg: Config) -> ModelConfig:
    return dataclasses.replace(cfg.model, path=cfg.dpo.ref_model or cfg.model.path, lora_r=0)


def _load_ref(cfg: Config, tokenizer, accelerator):
    what = "dpo.ref_model" if cfg.dpo.ref_model else "model.path"
    model = load_policy(_ref_model_cfg(cfg), tokenizer, what).to(accelerator.device).eval()
    return model.requires_grad_(False)


@torch.no_grad()
def all_logps(model, accelerator, pairs: list[dict], collate: PairCollator, batch_size: int) -> torch.Tensor:
    """(chosen, rejected) log-probs of every pair; each process scores a contiguous share.  Shape: (N, 2)"""
    n, per = len(pairs), math.ceil(len(pairs) / accelerator.num_processes)
    # the last share is padded with copies of the last pair, so that every process gathers as much
    mine = [min(accelerator.process_index * per + j, n - 1) for j in range(per)]
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, per, batch_size):
        batch = to_device(collate([pairs[k] for k in mine[i : i + batch_size]]), accelerator.device)
        with accelerator.autocast():
            out.append(forward_logps(model, batch)[0].view(2, -1).T)  # (b, 2)
    model.train(was_training)
    return accelerator.gather(torch.cat(out).contiguous())[:n].cpu()


def precomputed_reference(cfg, accelerator, model, tokenizer, run: RunDir, splits: dict, collate) -> RefFn:
    """Reference log-probs of every split, computed once and cached in the run directory; a
    resumed run (same data, reference and precision) reads them back instead of redoing them."""
    from safetensors.torch import load_file, safe_open, save_file

    path = run.root / REF_CACHE
    ref_cfg = _ref_model_cfg(cfg)
    # the reference's files (a model retrained into the same directory is a new reference)
    where = Path(ref_cfg.path).expanduser()
    files = sorted(f for f in where.glob("*") if f.is_file()) if where.is_dir() else []
    stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    h = hashlib.sha256(repr((ref_cfg, stamps, cfg.train.mixed_precision)).encode())
    for name in sorted(splits):
        for p in splits[name]:
            h.update(repr((name, p["prompt_ids"], p["chosen_ids"], p["rejected_ids"])).encode())
    key, cached = h.hexdigest(), None
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            cached = load_file(str(path)) if (f.metadata() or {}).get("fingerprint") == key else None
    if cached is None:
        t0 = time.perf_counter()
        ref = _load_ref(cfg, tokenizer, accelerator) if cfg.dpo.ref_model else accelerator.unwrap_model(model)
        cached = {n: all_logps(ref, accelerator, s, collate, cfg.train.batch_size) for n, s in splits.items()}
        if accelerator.is_main_process:
            save_file(cached, str(path.with_suffix(".tmp")), metadata={"fingerprint": key})
            path.with_suffix(".tmp").replace(path)
        accelerator.print(f"[dpo] reference log-probs computed in {time.perf_counter() - t0:.1f}s -> {path}")
    else:
        accelerator.print(f"[dpo] reference log-probs loaded from {path}")
    accelerator.wait_for_everyone()
    for name, pairs in splits.items():
        for p, (c, r) in zip(pairs, cached[name].tolist()):
            p["ref"] = (c, r)
    return lambda batch: batch["ref_logps"]


def frozen_reference(cfg, accelerator, model, tokenizer, run, splits, collate) -> RefFn:
    """A frozen copy of the reference model held in memory, run on every batch."""
    ref = _load_ref(cfg, tokenizer, accelerator)
    return torch.no_grad()(lambda batch: forward_logps(ref, batch)[0])


def adapters_off_reference(cfg, accelerator, model, tokenizer, run, splits, collate) -> RefFn:
    """The LoRA policy itself with its adapters disabled (peft): the base model, no second copy."""
    peft_model = accelerator.unwrap_model(model)

    @torch.no_grad()
    def ref(batch: dict) -> torch.Tensor:
        was_training = peft_model.training
        peft_model.eval()  # no dropout in the reference
        with peft_model.disable_adapter():
            logps = forward_logps(peft_model, batch)[0]
        peft_model.train(was_training)
        return logps

    return ref


REFERENCES = {
    "precompute": precomputed_reference,
    "frozen": frozen_reference,
    "adapters_off": adapters_off_reference,
}


# ---------------------------------------------------------------- training


@torch.no_grad()
def evaluate(model, accelerator, pairs, ref_fn: RefFn, loss_fn, cfg: Config, collate: PairCollator) -> dict:
    """eval_* metrics over every pair of ``pairs``, split across processes."""
    model.eval()
    sums = torch.zeros(len(STAT_NAMES), device=accelerator.device)
    mine = pairs[accelerator.process_index :: accelerator.num_processes]
    for i in range(0, len(mine), cfg.train.batch_size):
        batch = to_device(collate(mine[i : i + cfg.train.batch_size]), accelerator.device)
        with accelerator.autocast():
            logps, counts = forward_logps(model, batch)
            lp = split_pairs(logps, ref_fn(batch).float(), counts)
            out = loss_fn(lp, cfg.dpo.beta, cfg.dpo.label_smoothing)
        sums += pair_stats(out, lp, batch["weight"])
    model.train()
    return summarize(accelerator.reduce(sums, "sum"), "eval_")


def train(cfg: Config, callbacks: list[Callable[[int], None]] | None = None) -> Path:
    """Train a policy with the DPO family; returns the path of ``final/``. ``callbacks`` run after each step."""
    check_config(cfg)
    check_model_path(cfg.model.path)  # fail on a bad path before any work
    accelerator = make_accelerator(cfg.train)
    say = accelerator.print
    loss_fn = DPO_LOSSES[cfg.dpo.loss]

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
    collate = make_collator(cfg, model, tokenizer.pad_token_id, longest)
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)  # created once inputs are valid
    run.write_config(cfg)
    run.write_json("data.json", {"train": counts})
    plan = BatchPlan.build(len(pairs), cfg.train, accelerator.num_processes)
    optimizer = make_optimizer(model, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    splits = {"train": pairs, "eval": eval_pairs} if eval_pairs else {"train": pairs}
    ref_fn = REFERENCES[cfg.dpo.reference](cfg, accelerator, model, tokenizer, run, splits, collate)
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
                lp = split_pairs(logps, ref, n_tokens)
                out = loss_fn(lp, cfg.dpo.beta, cfg.dpo.label_smoothing)  # (B,) losses and rewards
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
    final = run.save_final(
        accelerator, lambda d: save_pretrained(accelerator.unwrap_model(model), tokenizer, d)
    )
    say(f"[dpo] saved {final}")
    return final
