"""The two model-heavy steps of `rlhf ppo`'s loop: the rollout's forwards (step 3) and the update
(step 5), the same for every algorithm; what differs comes from the algorithm's hooks.

Losses are token sums weighted by counts of the whole minibatch over all processes (algo.loss_agg),
so micro-batching and data parallelism give one big batch's gradient exactly. With a single
on-policy update (1 epoch, 1 minibatch, no micro-batches) the training forward *is* the sampling
policy's forward: it runs once, with grad, in step 3, and step 5 reuses it (``Live``).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, NamedTuple

import torch

from rlhf.data.collators import collate_sft
from rlhf.losses.logprobs import masked_nll, token_logprobs
from rlhf.losses.ppo import aggregation_weights, approx_kl, entropy_from_logits, policy_loss, value_loss
from rlhf.recipes.algorithms import Algorithm
from rlhf.recipes.loop import BatchPlan
from rlhf.recipes.ppo_config import Config
from rlhf.recipes.ppo_models import RLModels
from rlhf.rollout.experience import Experience, response_tokens

if TYPE_CHECKING:  # hints only
    from pathlib import Path

    from accelerate import Accelerator


class Live(NamedTuple):
    """The fused path's training forward, kept from step 3 for step 5."""

    logits: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor | None


class Ptx(NamedTuple):
    """PPO-ptx (InstructGPT eq. 2, gamma = ptx.coef): demonstrations and their batch plan."""

    examples: list
    plan: BatchPlan
    pad_id: int

    @staticmethod
    def build(examples: list, cfg: Config, processes: int, opt_steps: int, pad_id: int) -> Ptx | None:
        """None without demonstrations (ptx.coef = 0)."""
        if not examples:
            return None
        plan = BatchPlan(len(examples), cfg.ptx.batch_size, 1, processes, cfg.train.seed, opt_steps)
        return Ptx(examples, plan, pad_id)


def chunks(n: int, size: int) -> list[slice]:
    size = size or n
    return [slice(i, i + size) for i in range(0, n, size)]


def pad_to(x: torch.Tensor, width: int, have: int) -> torch.Tensor:
    """Right-pad a (B, have) tensor with zeros to (B, width)."""
    return x if have == width else torch.nn.functional.pad(x, (0, width - have))


def add(acc: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    acc[key] = acc.get(key, 0) + value.detach().float()


def batch_scores_std(accelerator: Accelerator, scores: torch.Tensor) -> torch.Tensor:
    """The unbiased std of every process's scores together (algo.scale_rewards=batch)."""
    return accelerator.gather(scores.detach().float()).std()


def rollout_forwards(
    models: RLModels, exp: Experience, cfg: Config, accelerator: Accelerator
) -> tuple[Live | None, list[torch.Tensor]]:
    """Fill ``exp.logprobs`` and ``exp.ref_logprobs`` (micro-batched, no grad); returns the fused
    path's live forward (or None) and the critic's values, one tensor per micro-batch."""
    a, temperature = cfg.algo, cfg.rollout.temperature
    mask, width = exp.response_mask, exp.response_mask.shape[1]
    fused = a.epochs == 1 and a.minibatches == 1 and not a.micro_batch
    logp, ref_logp, values = [], [], []
    rows = list(range(len(exp)))
    parts = [exp.select(rows[sl]) for sl in chunks(len(exp), a.micro_batch)] if a.micro_batch else [exp]
    with torch.no_grad(), accelerator.autocast():
        for part in parts:
            R, tokens = part.response_mask.shape[1], response_tokens(part)
            if a.reference:
                ref_logp.append(
                    pad_to(token_logprobs(models.reference_logits(part), tokens, temperature), width, R)
                )
            if fused:
                continue
            logits, v = models.forward(part)
            logp.append(pad_to(token_logprobs(logits, tokens, temperature), width, R))
            if v is not None:
                values.append(pad_to(v, width, R))
    live = None
    if fused:
        with accelerator.autocast():
            live_logits, live_values = models.forward(exp)
            live_logp = token_logprobs(live_logits, response_tokens(exp), temperature)
        live = Live(live_logits, live_logp, live_values)
        logp = [live_logp.detach()]
        values = [live_values.detach()] if models.critic is not None else []
    exp.logprobs = torch.cat(logp) * mask
    # without a reference (algo.reference=false, no KL term) the penalties are all 0
    exp.ref_logprobs = torch.cat(ref_logp) * mask if a.reference else exp.logprobs
    return live, values


def minibatch_order(exp: Experience, algorithm: Algorithm, n: int, rng: random.Random) -> list[int]:
    """A shuffled order of the rows; whole groups of ``n`` when packed or when the algorithm pairs them."""
    if exp.groups is not None or algorithm.whole_groups:
        groups = list(range(len(exp) // n))
        rng.shuffle(groups)
        return [g * n + i for g in groups for i in range(n)]
    order = list(range(len(exp)))
    rng.shuffle(order)
    return order


def optimise(
    models: RLModels,
    algorithm: Algorithm,
    exp: Experience,
    live: Live | None,
    cfg: Config,
    accelerator: Accelerator,
    step: int,
    kl_coef: float,
    ptx: Ptx | None,
    last_ckpt: Path | None,
) -> dict[str, torch.Tensor]:
    """algo.epochs passes of algo.minibatches optimizer steps over the rollout batch ``exp`` (step
    ``step``, 0-based); returns the statistics summed over every micro-batch."""
    a, n = cfg.algo, cfg.rollout.samples_per_prompt
    stats: dict[str, torch.Tensor] = {}
    mb_size = len(exp) // a.minibatches
    for epoch in range(a.epochs):
        order = minibatch_order(exp, algorithm, n, random.Random(cfg.train.seed * 7919 + step * 31 + epoch))
        for m in range(a.minibatches):
            mb = exp if live is not None else exp.select(order[m * mb_size : (m + 1) * mb_size])
            _minibatch(models, algorithm, mb, live, cfg, accelerator, kl_coef, stats, ptx is None)
            opt_index = (step * a.epochs + epoch) * a.minibatches + m
            if ptx is not None:
                _ptx_step(models, ptx, opt_index, cfg.ptx.coef, accelerator, stats)
            models.step(accelerator, cfg, step + 1, algorithm.reported_loss(stats), last_ckpt)
    return stats


def _minibatch(
    models: RLModels,
    algorithm: Algorithm,
    mb: Experience,
    live: Live | None,
    cfg: Config,
    accelerator: Accelerator,
    kl_coef: float,
    stats: dict[str, torch.Tensor],
    policy_steps_after: bool,
) -> None:
    """Forward and backward of one minibatch, micro-batch by micro-batch: the clipped surrogate,
    the entropy bonus, the algorithm's terms, the value loss. ``policy_steps_after``: the last
    micro-batch's backward is the policy's last before its optimizer step (no PPO-ptx batch follows)."""
    a, r, n, procs = cfg.algo, cfg.rollout, cfg.rollout.samples_per_prompt, accelerator.num_processes
    n_tok = accelerator.reduce(mb.response_mask.sum().detach().clone(), "sum").clamp(min=1)
    n_tok_total = n_tok.item()
    n_seq = accelerator.reduce(torch.tensor(float(len(mb)), device=accelerator.device), "sum").item()
    count = algorithm.minibatch_count(mb, n)
    if count is not None:  # what the algorithm's sequence term averages over, on every process
        count = accelerator.reduce(count, "sum").clamp(min=1)
    scale = procs / n_tok  # token mean; undoes DDP's mean over processes
    parts = chunks(len(mb), a.micro_batch)
    for i, sl in enumerate(parts):
        last = i == len(parts) - 1
        part = mb.select(list(range(len(mb)))[sl]) if a.micro_batch else mb
        pm = part.response_mask
        with accelerator.autocast():
            if live is not None:
                logits, new_logp, v = live
            else:  # a separate critic runs its own forward below
                logits, v = models.forward(part, values=False)
                new_logp = token_logprobs(logits, response_tokens(part), r.temperature)
            pl, clipped = policy_loss(
                new_logp,
                part.logprobs,
                part.advantages,
                a.clip,
                a.clip_high or None,
                pm if a.ratio_level == "sequence" else None,
            )
            per_token = pl
            ent = entropy_from_logits(logits.detach() if not a.entropy_coef else logits)
            if a.entropy_coef:
                per_token = per_token - a.entropy_coef * ent
            extra = algorithm.token_loss(new_logp, part, a, kl_coef)
            if extra is not None:
                per_token = per_token + extra
            weights = aggregation_weights(pm, a.loss_agg, n_tok_total, n_seq, r.max_new_tokens)
            loss = (per_token * weights).sum() * procs
            term = algorithm.sequence_loss(new_logp, part, n, kl_coef, procs, count)
            if term is not None:
                loss = loss + term.loss
            if models.shared_critic:  # one backward through the shared transformer
                vl, vclip = value_loss(v, part.values, part.returns, a.value_clip)
                loss = loss + cfg.critic.vf_coef * (vl * pm).sum() * scale
            models.backward(accelerator, loss, last and policy_steps_after)
        if algorithm.clipped_surrogate:
            add(stats, "policy_loss", (pl * pm).sum())
            add(stats, "clipfrac", (clipped * pm).sum())
            # which side: a positive advantage is clipped above 1 + clip_high, a negative below 1 - clip
            add(stats, "clipfrac_high", (clipped * (part.advantages > 0) * pm).sum())
        add(stats, "approx_kl", (approx_kl(new_logp.detach(), part.logprobs) * pm).sum())
        add(stats, "entropy", (ent.detach() * pm).sum())
        if models.critic is not None:
            if not models.shared_critic:  # a separate model: its own forward and backward
                with accelerator.autocast():
                    v = live.values if live is not None else models.critic_values(part)
                    vl, vclip = value_loss(v, part.values, part.returns, a.value_clip)
                    models.critic_backward(accelerator, (vl * pm).sum() * scale, last)
            add(stats, "value_loss", (vl.detach() * pm).sum())
            add(stats, "value_clipfrac", (vclip * pm).sum())
        add(stats, "tokens", pm.sum())
        for key, value in (term.stats if term is not None else {}).items():
            add(stats, key, value)


def _ptx_step(
    models: RLModels,
    ptx: Ptx,
    opt_index: int,
    coef: float,
    accelerator: Accelerator,
    stats: dict[str, torch.Tensor],
) -> None:
    """The PPO-ptx NLL of one batch of demonstrations, added to this optimizer step's gradient."""
    idx = ptx.plan.micro_batches(opt_index, accelerator.process_index)[0]
    batch = collate_sft([ptx.examples[i] for i in idx], ptx.pad_id)
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    with accelerator.autocast():
        out = models.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        nll, count = masked_nll(out.logits, batch["labels"])
        models.backward(accelerator, coef * nll / count.clamp(min=1), boundary=True)
    add(stats, "ptx_loss", nll.detach() / count.clamp(min=1))
    add(stats, "ptx_steps", torch.ones((), device=accelerator.device))
