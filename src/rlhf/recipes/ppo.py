"""RL against a reward: `rlhf ppo` with ``algo.name`` ppo (default), grpo, rloo or online_dpo.

One step of the loop (``train.max_steps`` of them, or ``train.epochs`` passes over the prompts):

    1. generate   train.batch_size prompts x rollout.samples_per_prompt responses (rollout engine)
    2. score      reward model at the response's last token (EOS), or a Python reward function;
                  normalise with the reward model's stored statistics, penalise missing EOS, clip
    3. forwards   log-probs of the sampling policy and the reference, values of the critic (with
                  critic.init=shared, a value head read off the policy's own forward)
    4. advantages ppo: per-token KL-shaped rewards (InstructGPT eq. 2) -> GAE -> whitening
                  rloo: sequence reward minus KL -> leave-one-out baseline
                  grpo: group-normalised scores; the KL (k3) goes into the loss instead
                  online_dpo: none; each prompt's best and worst sample become a DPO pair in step 5
    5. optimise   algo.epochs passes of algo.minibatches clipped-surrogate steps (+ value loss,
                  + PPO-ptx NLL on demonstrations; online_dpo: the DPO loss of the pairs)
    6. log        reward, KL, entropy, approx_kl, clipfrac, value loss, explained variance,
                  lengths, missing-EOS share, time split; samples/ every rollout.samples_every

Where this departs from the papers: losses are token sums weighted by counts of the whole
minibatch over all processes (algo.loss_agg; so micro-batching and data parallelism give one big
batch's gradient exactly);
dropout is off in every model (the policy's log-probs must not be noisy: ratios would be);
advantage whitening uses the local process's batch.

With rollout.samples_per_prompt = n > 1 the forwards of steps 2, 3 and 5 read each prompt once for
its n responses (rollout.share_prompt, rollout/groups.py) whenever that costs fewer FLOPs; then
minibatches are drawn as whole groups, and micro-batches that hold whole groups stay packed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import gather_object

from rlhf.config import ConfigError
from rlhf.data.collators import collate_sft
from rlhf.data.readers import DataError
from rlhf.data.records import Prompt, load_records
from rlhf.data.tokenize import (
    TruncationStats,
    encode_prompt,
    fit_prompt,
    render_prompt,
)
from rlhf.eval.metrics import repetition
from rlhf.losses.kl import kl_penalty
from rlhf.losses.online_dpo import online_dpo_loss
from rlhf.losses.ppo import aggregation_weights, approx_kl, entropy_from_logits, policy_loss, value_loss
from rlhf.losses.sft import masked_nll
from rlhf.models import shared_prompt
from rlhf.models.loading import DTYPES, load_policy, load_scalar_model, load_tokenizer
from rlhf.recipes.loop import (
    BatchPlan,
    make_accelerator,
    make_optimizer,
    make_scheduler,
    optimizer_step,
    progress,
)
from rlhf.recipes.ppo_config import Config, check
from rlhf.recipes.ppo_eval import evaluate_held_out, load_held_out
from rlhf.recipes.ppo_scorer import Scorer
from rlhf.recipes.run_dir import RunDir
from rlhf.recipes.sft import load_examples
from rlhf.rollout.advantages import (
    explained_variance,
    gae,
    group_advantages,
    group_pairs,
    rloo_advantages,
    uniform_groups,
    whiten,
)
from rlhf.rollout.engine import make_engine
from rlhf.rollout.experience import (
    Experience,
    TokenValueModel,
    ValueHead,
    pack_rollouts,
    response_logits,
    response_tokens,
    response_values,
    token_logprobs,
)
from rlhf.rollout.generate import SamplingParams
from rlhf.rollout.groups import pack_groups, packing_saves
from rlhf.rollout.kl_control import AdaptiveKLController, FixedKLController
from rlhf.rollout.reward_fn import RewardFn
from rlhf.rollout.reward_model import frozen
from rlhf.rollout.rewards import postprocess_scores, shape_rewards

__all__ = ["Config", "train"]
SampleMetrics = Callable[[list[str], list[str]], dict[str, float]]


def load_prompts(
    cfg: Config, tokenizer, path: str | None = None, key: str = "data.train"
) -> tuple[list[Prompt], list[str], list[list[int]], TruncationStats]:
    """The prompts of ``path``'s records (data.train by default; ``key`` names it in errors): as
    written, rendered, and tokenized, each cut to leave rollout.max_new_tokens within data.max_length."""
    path = cfg.data.train if path is None else path
    records = load_records(path, "prompt", key)
    stats = TruncationStats()
    prompts, texts, ids = [], [], []
    for rec in records:
        cut = fit_prompt(
            encode_prompt(tokenizer, rec.prompt),
            cfg.rollout.max_new_tokens,
            cfg.data.max_length,
            cfg.data.max_prompt_length,
            stats,
        )
        if cut is not None:
            prompts.append(rec.prompt)
            texts.append(render_prompt(tokenizer, rec.prompt))
            ids.append(cut)
    if not ids:
        raise DataError(f"{key}: no prompt of {path} fits data.max_length - rollout.max_new_tokens tokens")
    return prompts, texts, ids, stats


def _chunks(n: int, size: int) -> list[slice]:
    size = size or n
    return [slice(i, i + size) for i in range(0, n, size)]


def train(
    cfg: Config,
    callbacks: list[Callable[[int], None]] | None = None,
    sample_metrics: SampleMetrics | None = None,
    reward_fn: RewardFn | None = None,
) -> Path:
    """Run PPO/GRPO/RLOO; returns ``final/``. ``sample_metrics(prompts, completions)`` adds
    metrics computed on each step's samples (the demo's gold reward). ``reward_fn``: from Python,
    a reward callable (a closure, say) instead of rewards.model or rewards.function; a resumed
    run needs the same one passed again."""
    reward_fn = check(cfg, reward_fn)  # every config error before any work
    a, r = cfg.algo, cfg.rollout
    accelerator = make_accelerator(cfg.train, lora=cfg.model.lora_r > 0)
    say, device, n = accelerator.print, accelerator.device, r.samples_per_prompt

    # 0. data, models, optimizers
    tokenizer = load_tokenizer(cfg.model.path)
    prompts, prompt_texts, prompt_ids, stats = load_prompts(cfg, tokenizer)
    say(f"[ppo] data.train: {stats.summary()}")
    ptx = load_examples(cfg.ptx.data, "ptx.data", tokenizer, cfg)[0] if cfg.ptx.coef > 0 else []
    held_out = load_held_out(cfg, tokenizer)
    # reward models before the run directory is touched: a wrong one (a causal LM) fails here
    scorer = Scorer(cfg, tokenizer, reward_fn, device)
    held_path = cfg.rewards.heldout_model  # a second reward model that only watches
    watcher = Scorer(cfg, tokenizer, None, device, held_path, "rewards.heldout_model") if held_path else None
    if a.name == "ppo" and cfg.critic.init == "reward" and not scorer.rm.same_vocab:
        raise ConfigError(  # the critic reads the policy's tokens
            "critic.init=reward: rewards.model uses another tokenizer than model.path, so it cannot read "
            "the policy's tokens as a critic; use critic.init=policy or critic.init=shared"
        )
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)
    run.write_config(cfg)
    run.write_json(
        "data.json",
        {
            "train": vars(stats),
            "ptx_records": len(ptx),
            "eval_prompts": len(held_out.prompt_ids),
            "eval_text": len(held_out.text),
        },
    )

    policy = load_policy(cfg.model, tokenizer).eval()
    lora = cfg.model.lora_r > 0
    # with LoRA the reference is the policy with its adapters switched off: no second copy
    ref = (
        None
        if lora or not a.reference
        else frozen(load_policy(replace(cfg.model, lora_r=0), tokenizer)).to(device)
    )
    if cfg.train.mixed_precision == "bf16":  # frozen models keep bf16 weights: no casts in every forward
        for model in (ref, scorer.model, watcher and watcher.model):
            if model is not None:
                model.to(torch.bfloat16)
    critic = None
    shared_critic = a.name == "ppo" and cfg.critic.init == "shared"
    if shared_critic:  # a value head on the policy's own transformer, as wide as its last hidden state
        lm_head = policy.get_output_embeddings()
        if not isinstance(lm_head, torch.nn.Linear):
            raise ConfigError(
                f"critic.init=shared: {type(policy).__name__} has no linear output layer to size a value head by"
            )
        critic = ValueHead(lm_head.in_features)
    elif a.name == "ppo":
        init = cfg.rewards.model if cfg.critic.init == "reward" else cfg.model.path
        body = load_scalar_model(
            replace(cfg.model, path=init, lora_r=0), tokenizer, f"critic.init={cfg.critic.init}"
        )
        critic = TokenValueModel(body.eval())
    plan = BatchPlan.build(len(prompt_ids), cfg.train, accelerator.num_processes)
    opt_steps = plan.total_steps * a.epochs * a.minibatches
    optimizer = make_optimizer(policy, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, opt_steps)
    models = [policy, optimizer]
    if critic is not None:
        critic_train = replace(cfg.train, lr=cfg.critic.lr)
        c_optimizer = make_optimizer(critic, critic_train)
        c_scheduler = make_scheduler(c_optimizer, critic_train, opt_steps)
        models += [critic, c_optimizer]
    prepared = accelerator.prepare(*models)
    policy, optimizer = prepared[0], prepared[1]
    accelerator.register_for_checkpointing(scheduler)
    if critic is not None:
        critic, c_optimizer = prepared[2], prepared[3]
        accelerator.register_for_checkpointing(c_scheduler)
    start, last_ckpt = run.resume(accelerator, cfg.train.resume)
    kl_ctl = (
        AdaptiveKLController(a.kl_coef, a.kl_target, a.kl_horizon)
        if a.kl_target > 0
        else FixedKLController(a.kl_coef)
    )
    if last_ckpt is not None:
        kl_ctl.load_state_dict(json.loads((last_ckpt / "state.json").read_text())["kl_controller"])
    unwrapped = accelerator.unwrap_model(policy)
    engine = make_engine(r.engine, unwrapped, tokenizer, r.batch_size, DTYPES.get(r.dtype))  # "auto": None
    share = r.share_prompt and n > 1
    if share:  # every model must take the 4D mask, before any work
        longest = max(len(p) for p in prompt_ids) + n * r.max_new_tokens
        for model in (
            policy,
            ref,
            None if shared_critic else critic,
            scorer.model,
            watcher and watcher.model,
        ):
            if model is not None:
                shared_prompt.check(model, longest, "rollout.share_prompt")
    hidden = getattr(shared_prompt.base_model(unwrapped).config, "hidden_size", None)  # None: never pack
    ptx_plan = (
        BatchPlan(len(ptx), cfg.ptx.batch_size, 1, accelerator.num_processes, cfg.train.seed, opt_steps)
        if ptx
        else None
    )

    def forward(part: Experience) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's logits and, with a critic, its values; one forward with critic.init=shared."""
        if shared_critic:
            return response_logits(policy, part, head=critic)
        return response_logits(policy, part), response_values(critic, part) if critic is not None else None

    def reference_logits(exp: Experience) -> torch.Tensor:
        if ref is not None:
            return response_logits(ref, exp)
        with unwrapped.disable_adapter():
            return response_logits(policy, exp)

    sampling = SamplingParams(
        r.max_new_tokens,
        r.temperature,
        r.top_p,
        r.top_k,
        n=n,
        stop=list(r.stop),
        min_new_tokens=r.min_new_tokens,
    )
    eval_params = replace(sampling, n=1, seed=cfg.train.seed * 1_000_003 - 1)  # one seed for every evaluation

    def evaluate(done: int) -> float:
        """Log the held-out evaluation of the policy after ``done`` steps; returns its seconds."""
        t = time.perf_counter()
        result = evaluate_held_out(
            held_out,
            policy=policy,
            engine=engine,
            scorer=scorer,
            reference_logits=reference_logits if a.reference else None,
            params=eval_params,
            cfg=cfg,
            accelerator=accelerator,
            pad_id=tokenizer.pad_token_id,
            sample_metrics=sample_metrics,
        )
        seconds = time.perf_counter() - t
        run.log({"step": done, **result, "time_eval": seconds})
        say(f"[{a.name}] step {done} eval: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()))
        return seconds

    if held_out and start == 0:  # the starting policy, for comparison
        evaluate(0)
    bar = progress(plan.total_steps, start, not accelerator.is_local_main_process, f"{a.name}")
    t_start, rollouts_done, eval_seconds = time.perf_counter(), 0, 0.0
    for step in range(start, plan.total_steps):
        # 1. generate
        t0 = time.perf_counter()
        idx = plan.micro_batches(step, accelerator.process_index)[0]
        params = replace(sampling, seed=cfg.train.seed * 1_000_003 + step * 997 + accelerator.process_index)
        gens = [g for gs in engine.generate_ids([prompt_ids[i] for i in idx], params) for g in gs]
        rows_prompt = [prompt_ids[i] for i in idx for _ in range(n)]
        rows_text = [prompt_texts[i] for i in idx for _ in range(n)]
        rows_raw = [prompts[i] for i in idx for _ in range(n)]
        responses = [g.response_ids or [tokenizer.eos_token_id] for g in gens]
        finished = torch.tensor([g.finished for g in gens])
        exp = pack_rollouts(rows_prompt, responses, tokenizer.pad_token_id)
        if share and hidden and packing_saves(rows_prompt, responses, n, hidden):
            exp.groups = pack_groups(rows_prompt, responses, n, tokenizer.pad_token_id, None)
        exp = exp.to(device)
        t1 = time.perf_counter()

        # 2. score
        raw = scorer(rows_raw, rows_text, rows_prompt, gens, accelerator.autocast, n if share else 1).to(
            device
        )
        exp.scores = postprocess_scores(
            raw,
            finished.to(device),
            scorer.mean,
            scorer.std,
            r_clip(cfg),
            cfg.rewards.missing_eos_penalty or None,
        )

        # 3. log-probs of the sampling policy and the reference, values (micro-batched). With a
        # single on-policy update (1 epoch, 1 minibatch, no micro-batches) the training forward
        # *is* the sampling policy's forward: it runs once, with grad, and step 5 reuses it.
        mask, width = exp.response_mask, exp.response_mask.shape[1]
        fused = a.epochs == 1 and a.minibatches == 1 and not a.micro_batch
        logp, ref_logp, values = [], [], []
        rows = list(range(len(exp)))
        parts = [exp.select(rows[sl]) for sl in _chunks(len(exp), a.micro_batch)] if a.micro_batch else [exp]
        with torch.no_grad(), accelerator.autocast():
            for part in parts:
                R, tokens = part.response_mask.shape[1], response_tokens(part)
                if a.reference:
                    ref_logp.append(
                        _pad_to(token_logprobs(reference_logits(part), tokens, r.temperature), width, R)
                    )
                if fused:
                    continue
                logits, v = forward(part)
                logp.append(_pad_to(token_logprobs(logits, tokens, r.temperature), width, R))
                if v is not None:
                    values.append(_pad_to(v, width, R))
        live = None
        if fused:
            with accelerator.autocast():
                live_logits, live_values = forward(exp)
                live_logp = token_logprobs(live_logits, response_tokens(exp), r.temperature)
            live = (live_logits, live_logp, live_values)
            logp = [live_logp.detach()]
            values = [live_values.detach()] if critic is not None else []
        exp.logprobs = torch.cat(logp) * mask
        # without a reference (algo.reference=false, no KL term) the penalties below are all 0
        exp.ref_logprobs = torch.cat(ref_logp) * mask if a.reference else exp.logprobs
        kl_tok = kl_penalty(exp.logprobs, exp.ref_logprobs, "k1") * mask  # for logging: log pi - log ref
        seq_kl = kl_tok.sum(1)  # (B,)

        # 4. advantages
        batch_std = None  # algo.scale_rewards=batch: the std of every process's scores
        if a.name == "grpo" and a.scale_rewards == "batch":
            batch_std = _batch_std(accelerator, exp.scores)
        if a.name == "ppo":
            exp.values = torch.cat(values) * mask
            rewards, _ = shape_rewards(
                exp.scores, exp.logprobs, exp.ref_logprobs, mask, kl_ctl.value, a.kl_estimator
            )
            adv, exp.returns = gae(rewards, exp.values, mask, a.gamma, a.lam)
            exp.advantages = whiten(adv, mask) if a.whiten_advantages else adv
        elif a.name == "rloo":
            est = kl_penalty(exp.logprobs, exp.ref_logprobs, a.kl_estimator) * mask
            seq_reward = exp.scores - kl_ctl.value * est.sum(1)
            exp.advantages = rloo_advantages(seq_reward, n)[:, None] * mask
        elif a.name == "grpo":
            exp.advantages = (
                group_advantages(exp.scores, n, a.scale_rewards, batch_std=batch_std)[:, None] * mask
            )
        else:  # online_dpo: no advantages; step 5 pairs each prompt's best and worst sample
            exp.advantages = torch.zeros_like(mask, dtype=exp.logprobs.dtype)
        t2 = time.perf_counter()

        # 5. optimise: epochs x minibatches of clipped-surrogate steps
        stats_sum: dict[str, float] = {}
        mb_size = len(exp) // a.minibatches
        for epoch in range(a.epochs):
            rng = random.Random(cfg.train.seed * 7919 + step * 31 + epoch)
            if exp.groups is not None or a.name == "online_dpo":  # whole groups: packed rows, or pairs
                groups = list(range(len(exp) // n))
                rng.shuffle(groups)
                order = [g * n + i for g in groups for i in range(n)]
            else:
                order = list(range(len(exp)))
                rng.shuffle(order)
            for m in range(a.minibatches):
                mb = exp if fused else exp.select(order[m * mb_size : (m + 1) * mb_size])
                n_tok = accelerator.reduce(mb.response_mask.sum().detach().clone(), "sum").clamp(min=1)
                n_tok_total = n_tok.item()
                n_seq = accelerator.reduce(torch.tensor(float(len(mb)), device=device), "sum").item()
                if a.name == "online_dpo":  # preference pairs in the minibatch, over all processes
                    n_pairs = accelerator.reduce(group_pairs(mb.scores, n)[2].sum().float(), "sum").clamp(
                        min=1
                    )
                scale = accelerator.num_processes / n_tok  # token mean; undoes DDP's mean over processes
                for sl in _chunks(len(mb), a.micro_batch):
                    part = mb.select(list(range(len(mb)))[sl]) if a.micro_batch else mb
                    pm = part.response_mask
                    with accelerator.autocast():
                        if live is not None:
                            logits, new_logp, v = live
                        else:  # a separate critic runs its own forward below
                            logits, v = (
                                forward(part) if shared_critic else (response_logits(policy, part), None)
                            )
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
                        if a.name == "grpo" and a.reference:
                            per_token = per_token + kl_ctl.value * kl_penalty(
                                new_logp, part.ref_logprobs, "k3"
                            )
                        weights = aggregation_weights(pm, a.loss_agg, n_tok_total, n_seq, r.max_new_tokens)
                        loss = (per_token * weights).sum() * accelerator.num_processes
                        if a.name == "online_dpo":
                            dpo = online_dpo_loss(
                                new_logp, part.ref_logprobs, pm, part.scores, n, kl_ctl.value
                            )
                            loss = loss + dpo.losses.sum() * accelerator.num_processes / n_pairs
                        if shared_critic:  # one backward through the shared transformer
                            vl, vclip = value_loss(v, part.values, part.returns, a.value_clip)
                            loss = loss + cfg.critic.vf_coef * (vl * pm).sum() * scale
                        accelerator.backward(loss)
                    if a.name != "online_dpo":  # online DPO has no clipped surrogate to report
                        _add(stats_sum, "policy_loss", (pl * pm).sum())
                        _add(stats_sum, "clipfrac", (clipped * pm).sum())
                        # which side: a positive advantage is clipped above 1 + clip_high, a negative below 1 - clip
                        _add(stats_sum, "clipfrac_high", (clipped * (part.advantages > 0) * pm).sum())
                    _add(stats_sum, "approx_kl", (approx_kl(new_logp.detach(), part.logprobs) * pm).sum())
                    _add(stats_sum, "entropy", (ent.detach() * pm).sum())
                    if critic is not None:
                        if not shared_critic:  # a separate model: its own forward and backward
                            with accelerator.autocast():
                                v = live[2] if live is not None else response_values(critic, part)
                                vl, vclip = value_loss(v, part.values, part.returns, a.value_clip)
                                accelerator.backward((vl * pm).sum() * scale)
                        _add(stats_sum, "value_loss", (vl.detach() * pm).sum())
                        _add(stats_sum, "value_clipfrac", (vclip * pm).sum())
                    _add(stats_sum, "tokens", pm.sum())
                    if a.name == "online_dpo":
                        _add(stats_sum, "pairs", dpo.pairs)
                        _add(stats_sum, "dpo_loss", dpo.losses.detach().sum())
                        _add(stats_sum, "dpo_accuracy", dpo.correct)
                        _add(stats_sum, "dpo_margin", dpo.margin)
                opt_index = (step * a.epochs + epoch) * a.minibatches + m
                if ptx_plan is not None:
                    batch = collate_sft(
                        [ptx[i] for i in ptx_plan.micro_batches(opt_index, accelerator.process_index)[0]],
                        tokenizer.pad_token_id,
                    )
                    batch = {k: v.to(device) for k, v in batch.items()}
                    with accelerator.autocast():
                        out = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                        nll, count = masked_nll(out.logits, batch["labels"])
                        accelerator.backward(cfg.ptx.coef * nll / count.clamp(min=1))
                    _add(stats_sum, "ptx_loss", nll.detach() / count.clamp(min=1))
                    _add(stats_sum, "ptx_steps", torch.ones((), device=device))
                loss_now = float(
                    stats_sum["dpo_loss"] / stats_sum["pairs"].clamp(min=1)
                    if a.name == "online_dpo"
                    else stats_sum["policy_loss"] / stats_sum["tokens"]
                )
                optimizer_step(
                    accelerator, policy, optimizer, scheduler, cfg.train, step + 1, loss_now, last_ckpt
                )
                if critic is not None:
                    optimizer_step(
                        accelerator,
                        critic,
                        c_optimizer,
                        c_scheduler,
                        cfg.train,
                        step + 1,
                        loss_now,
                        last_ckpt,
                    )
        engine.sync_weights(unwrapped)
        t3 = time.perf_counter()

        # 6. log, adapt the KL coefficient, checkpoint
        rollouts = accelerator.reduce(torch.tensor(float(len(exp)), device=device), "sum").item()
        mean_kl = accelerator.reduce(seq_kl.mean(), "mean").item()
        kl_used = kl_ctl.value
        kl_ctl.update(mean_kl, int(rollouts))
        rollouts_done += rollouts
        done = step + 1
        bar.update(1)
        bar.set_postfix(
            score=f"{raw.mean().item():+.3f}", **({"kl": f"{mean_kl:.3f}"} if a.reference else {})
        )
        completions = [g.text for g in gens]
        logged = done % cfg.train.log_every == 0 or done == plan.total_steps
        sampled = bool(r.samples_every) and (done % r.samples_every == 0 or done == plan.total_steps)
        if (
            logged or sampled
        ):  # every process's samples: diversity, sample_metrics and the samples file see them all
            every = _gather_rows(accelerator, rows_text, completions, raw.tolist())
        if logged:
            tok, pairs = stats_sum.pop("tokens"), stats_sum.pop("pairs", None)

            steps = a.epochs * a.minibatches  # each summed statistic is a mean over steps, pairs or tokens
            local = {
                "score_raw": raw.mean(),
                "score": exp.scores.mean(),
                "kl": seq_kl.mean(),
                "response_length": mask.sum(1).mean(),
                "no_eos_share": (~finished).float().mean().to(device),
                **{
                    k: v
                    / (steps if k.startswith("ptx") else pairs.clamp(min=1) if k.startswith("dpo_") else tok)
                    for k, v in stats_sum.items()
                },
            }
            if watcher is not None:  # read on logged steps only: it trains nothing
                with torch.no_grad():
                    held = watcher(
                        rows_raw, rows_text, rows_prompt, gens, accelerator.autocast, n if share else 1
                    ).to(device)
                local.update(
                    score_heldout_raw=held.mean(),
                    score_heldout=postprocess_scores(
                        held, finished.to(device), watcher.mean, watcher.std
                    ).mean(),
                )
            if a.name != "ppo":  # groups whose samples all scored the same teach nothing
                local["uniform_groups"] = uniform_groups(exp.scores, n).float().mean()
            if not a.reference:
                local.pop("kl")
            record = {"step": done, "epoch": round(plan.epoch_of(done), 4)}
            record.update(
                {k: accelerator.reduce(v.float().reshape(()), "mean").item() for k, v in local.items()}
            )
            # signs of reward hacking that need no gold: answers that loop, and answers that all look alike
            record.update(repetition(every[1]))
            every_score = torch.tensor(every[2], dtype=torch.float64)  # the whole batch's, every process's
            record["score_raw_std"] = every_score.std().item() if len(every_score) > 1 else 0.0
            if batch_std is not None:  # what algo.scale_rewards=batch divided the advantages by
                record["advantage_scale"] = float(batch_std)
            record.pop("ptx_steps", None)
            if critic is not None:
                record["explained_variance"] = explained_variance(exp.values, exp.returns, mask)
            if sample_metrics is not None:
                record.update(sample_metrics(every[0], every[1]))
            elapsed = time.perf_counter() - t_start - eval_seconds
            record.update(
                kl_coef=kl_used,
                lr=scheduler.get_last_lr()[0],
                time_generate=t1 - t0,
                time_score=t2 - t1,
                time_train=t3 - t2,
                rollouts_per_s=rollouts_done / elapsed,
            )
            run.log(record)
        if sampled:
            write_samples(run, done, *every, accelerator.is_main_process)
        if held_out and (
            done == plan.total_steps or (cfg.train.eval_every and done % cfg.train.eval_every == 0)
        ):
            eval_seconds += evaluate(done)
        if cfg.train.save_every and done % cfg.train.save_every == 0 and done < plan.total_steps:
            last_ckpt = run.save_checkpoint(
                accelerator,
                done,
                {"epoch": plan.epoch_of(done), "kl_controller": kl_ctl.state_dict()},
                cfg.train.keep_checkpoints,
            )
        for cb in callbacks or []:
            cb(done)
    bar.close()
    final = run.save_final(accelerator, policy, tokenizer)
    say(f"[{a.name}] saved {final}")
    return final


def r_clip(cfg: Config) -> float | None:
    return cfg.rewards.clip if cfg.rewards.clip > 0 else None


def _add(acc: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    acc[key] = acc.get(key, 0) + value.detach().float()


def _pad_to(x: torch.Tensor, width: int, have: int) -> torch.Tensor:
    """Right-pad a (B, have) tensor with zeros to (B, width)."""
    return x if have == width else torch.nn.functional.pad(x, (0, width - have))


def _batch_std(accelerator, scores: torch.Tensor) -> torch.Tensor:
    """The unbiased std of every process's scores together (algo.scale_rewards=batch)."""
    return accelerator.gather(scores.detach().float()).std()


def _gather_rows(accelerator, *columns: list) -> tuple[list, ...]:
    """Each column's rows from every process, in process order (as they are on one process)."""
    if accelerator.num_processes == 1:
        return columns
    return tuple(gather_object(list(c)) for c in columns)


def write_samples(run: RunDir, step: int, prompts, completions, scores, is_main: bool) -> None:
    if not is_main:
        return
    path = run.samples / f"step-{step}.jsonl"
    with path.open("w") as fh:
        for p, c, s in zip(prompts, completions, scores):
            fh.write(json.dumps({"prompt": p, "response": c, "score": s}) + "\n")
