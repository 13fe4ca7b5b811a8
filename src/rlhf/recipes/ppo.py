"""RL against a reward: `rlhf ppo` runs the algorithm ``algo.name`` names in recipes/algorithms/
(ppo, the default; grpo, rloo, online_dpo).

One step of the loop (``train.max_steps`` of them, or ``train.epochs`` passes over the prompts):

    1. generate   train.batch_size prompts x rollout.samples_per_prompt responses (rollout engine)
    2. score      reward model at the response's last token (EOS), or a Python reward function;
                  normalise with the reward model's stored statistics, penalise missing EOS, clip
    3. forwards   log-probs of the sampling policy and the reference, values of the critic (with
                  critic.init=shared, a value head read off the policy's own forward)
    4. advantages the algorithm's hook (recipes/algorithms/): ppo: per-token KL-shaped rewards
                  (InstructGPT eq. 2) -> GAE -> whitening; rloo: sequence reward minus KL ->
                  leave-one-out baseline; grpo: group-normalised scores (its KL, k3, goes into the
                  loss); online_dpo: none (each prompt's best and worst sample form a DPO pair)
    5. optimise   algo.epochs passes of algo.minibatches clipped-surrogate steps, plus the terms
                  the algorithm adds (GRPO's KL, online DPO's pair loss), the value loss with a
                  critic, the PPO-ptx NLL on demonstrations (recipes/ppo_update.py)
    6. log        reward, KL, entropy, approx_kl, clipfrac, value loss, explained variance,
                  lengths, missing-EOS share, time split; samples/ every rollout.samples_every

The loop never asks which algorithm it runs: it asks the algorithm (critic? groups? advantages?
extra loss terms?). A new variant is a new file in recipes/algorithms/ and one registry entry.

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
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from rlhf.data.prompts import load_prompts
from rlhf.losses.kl import sequence_kl
from rlhf.models import shared_prompt
from rlhf.models.loading import DTYPES, load_tokenizer
from rlhf.recipes.algorithms import ALGORITHMS
from rlhf.recipes.loop import BatchPlan, make_accelerator, progress
from rlhf.recipes.ppo_config import Config, check
from rlhf.recipes.ppo_eval import HeldOutEval, load_held_out
from rlhf.recipes.ppo_log import batch_metrics, gather_rows, step_metrics, write_samples
from rlhf.recipes.ppo_models import build_models, check_critic_init
from rlhf.recipes.ppo_rollout import Prompts, generate, pack
from rlhf.recipes.ppo_scorer import Scorer
from rlhf.recipes.ppo_update import Ptx, batch_scores_std, optimise, rollout_forwards
from rlhf.recipes.rl_sharding import RolloutCopy
from rlhf.recipes.run_adapter import save_adapter
from rlhf.recipes.run_dir import RunDir
from rlhf.recipes.sft import load_examples
from rlhf.rollout.engine import make_engine
from rlhf.rollout.generate import sampling_params
from rlhf.rollout.kl_control import make_kl_controller
from rlhf.rollout.reward_fn import RewardFn
from rlhf.rollout.reward_shaping import postprocess_scores

__all__ = ["Config", "train"]
SUMMARY = f"RL against a reward model or function (algo.name={'|'.join(ALGORITHMS)})"
SampleMetrics = Callable[[list[str], list[str]], dict[str, float]]


def train(
    cfg: Config,
    callbacks: list[Callable[[int], None]] | None = None,
    sample_metrics: SampleMetrics | None = None,
    reward_fn: RewardFn | None = None,
) -> Path:
    """Run the RL algorithm algo.name; returns ``final/``. ``sample_metrics(prompts, completions)``
    adds metrics computed on each step's samples (the demo's gold reward). ``reward_fn``: from
    Python, a reward callable (a closure, say) instead of rewards.model or rewards.function; a
    resumed run needs the same one passed again."""
    reward_fn = check(cfg, reward_fn)  # every config error before any work
    a, r, algorithm = cfg.algo, cfg.rollout, ALGORITHMS[cfg.algo.name]
    accelerator = make_accelerator(cfg.train, lora=cfg.model.lora_r > 0)
    say, device, n = accelerator.print, accelerator.device, r.samples_per_prompt

    # 0. data, models, optimizers
    tokenizer = load_tokenizer(cfg.model.path)
    d = cfg.data
    *prompts, stats = load_prompts(
        d.train, "data.train", tokenizer, r.max_new_tokens, d.max_length, d.max_prompt_length
    )
    data, prompt_ids = Prompts(*prompts), prompts[2]
    say(f"[ppo] data.train: {stats.summary()}")
    ptx = load_examples(cfg.ptx.data, "ptx.data", tokenizer, cfg)[0] if cfg.ptx.coef > 0 else []
    held_out = load_held_out(cfg, tokenizer)
    # reward models before the run directory is touched: a wrong one (a causal LM) fails here
    scorer = Scorer(cfg, tokenizer, reward_fn, device)
    held_path = cfg.rewards.heldout_model  # a second reward model that only watches
    watcher = Scorer(cfg, tokenizer, None, device, held_path, "rewards.heldout_model") if held_path else None
    check_critic_init(cfg, algorithm.critic, scorer.rm)
    run = RunDir(cfg.train.output_dir, accelerator.is_main_process)
    run.write_config(cfg, accelerator)
    counts = {"train": vars(stats), "ptx_records": len(ptx), "eval_prompts": len(held_out.prompt_ids)}
    run.write_json("data.json", {**counts, "eval_text": len(held_out.text)})
    plan = BatchPlan.build(len(prompt_ids), cfg.train, accelerator.num_processes)
    opt_steps = plan.total_steps * a.epochs * a.minibatches
    scorers = [scorer.model, watcher and watcher.model]
    models = build_models(cfg, tokenizer, accelerator, algorithm.critic, scorers, opt_steps)
    start, last_ckpt = run.resume(accelerator, cfg.train.resume, models.extra_accelerators)
    kl_ctl = make_kl_controller(a.kl_coef, a.kl_target, a.kl_horizon)
    if last_ckpt is not None:
        kl_ctl.load_state_dict(json.loads((last_ckpt / "state.json").read_text())["kl_controller"])
    # the rollout engine reads a whole policy: under FSDP2/ZeRO-3 a copy refreshed once a step
    rollout_copy = RolloutCopy(accelerator, models.unwrapped)
    engine = make_engine(r.engine, rollout_copy.model, tokenizer, r.batch_size, DTYPES.get(r.dtype))
    share = r.share_prompt and n > 1
    if share:  # every model must take the 4D mask, before any work
        models.check_shared_prompt(max(len(p) for p in prompt_ids) + n * r.max_new_tokens, scorers)
    hidden = getattr(
        shared_prompt.base_model(models.unwrapped).config, "hidden_size", None
    )  # None: no packing
    ptx_data = Ptx.build(ptx, cfg, accelerator.num_processes, opt_steps, tokenizer.pad_token_id)
    sampling = sampling_params(r, n=n, min_new_tokens=r.min_new_tokens)
    eval_params = replace(sampling, n=1, seed=cfg.train.seed * 1_000_003 - 1)  # one seed for every evaluation
    pad = tokenizer.pad_token_id
    evaluate = HeldOutEval(
        held_out, models, engine, scorer, eval_params, cfg, accelerator, pad, run, sample_metrics
    )
    if held_out and start == 0:  # the starting policy, for comparison
        evaluate(0)
    bar = progress(plan.total_steps, start, not accelerator.is_local_main_process, f"{a.name}")
    t_start, rollouts_done, eval_seconds = time.perf_counter(), 0, 0.0
    for step in range(start, plan.total_steps):
        # 1. generate: n responses to each of this process's prompts
        t0 = time.perf_counter()
        idx = plan.micro_batches(step, accelerator.process_index)[0]
        params = replace(sampling, seed=cfg.train.seed * 1_000_003 + step * 997 + accelerator.process_index)
        roll = generate(engine, params, data, idx, share, device)
        exp = pack(roll, tokenizer, hidden, device)
        t1 = time.perf_counter()

        # 2. score: the reward of each response, normalised, penalised for a missing EOS, clipped
        raw = roll.scores(scorer, accelerator.autocast).to(device)
        eos_penalty = cfg.rewards.missing_eos_penalty or None
        exp.scores = postprocess_scores(raw, roll.finished, scorer.mean, scorer.std, r_clip(cfg), eos_penalty)

        # 3. forwards: log-probs of the sampling policy and the reference, the critic's values
        live, values = rollout_forwards(models, exp, cfg, accelerator)
        seq_kl = sequence_kl(exp.logprobs, exp.ref_logprobs, exp.response_mask)  # (B,) logged: k1

        # 4. advantages (and a critic's returns), the algorithm's way
        batch_std = batch_scores_std(accelerator, exp.scores) if a.scale_rewards == "batch" else None
        if values:
            exp.values = torch.cat(values) * exp.response_mask
        exp.advantages, exp.returns = algorithm.advantages(exp, a, n, kl_ctl.value, batch_std)
        t2 = time.perf_counter()

        # 5. optimise the policy (and critic); the engine samples from the new weights next step
        stats_sum = optimise(
            models, algorithm, exp, live, cfg, accelerator, step, kl_ctl.value, ptx_data, last_ckpt
        )
        engine.sync_weights(rollout_copy.refresh())
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
        logged = done % cfg.train.log_every == 0 or done == plan.total_steps
        sampled = bool(r.samples_every) and (done % r.samples_every == 0 or done == plan.total_steps)
        if logged or sampled:  # every process's samples: diversity, sample_metrics and the samples file
            every = gather_rows(accelerator, roll.texts, [g.text for g in roll.gens], raw.tolist())
        if logged:
            record = {"step": done, "epoch": round(plan.epoch_of(done), 4)}
            record |= step_metrics(stats_sum, exp, roll, raw, seq_kl, watcher, cfg, algorithm, accelerator)
            record |= batch_metrics(every, exp, models.critic is not None, batch_std)
            if sample_metrics is not None:
                record.update(sample_metrics(every[0], every[1]))
            elapsed = time.perf_counter() - t_start - eval_seconds
            times = {"time_generate": t1 - t0, "time_score": t2 - t1, "time_train": t3 - t2}
            lr = models.scheduler.get_last_lr()[0]
            run.log(
                {**record, "kl_coef": kl_used, "lr": lr, **times, "rollouts_per_s": rollouts_done / elapsed}
            )
        if sampled:
            write_samples(run, done, *every, accelerator.is_main_process)
        if held_out and (
            done == plan.total_steps or (cfg.train.eval_every and done % cfg.train.eval_every == 0)
        ):
            eval_seconds += evaluate(done)
        if cfg.train.save_every and done % cfg.train.save_every == 0 and done < plan.total_steps:
            state = {"epoch": plan.epoch_of(done), "kl_controller": kl_ctl.state_dict()}
            last_ckpt = run.save_checkpoint(
                accelerator, done, state, cfg.train.keep_checkpoints, models.extra_accelerators
            )
        for cb in callbacks or []:
            cb(done)
    bar.close()
    save_adapter(
        run, accelerator, models.policy, tokenizer, cfg.model.path
    )  # before the final save merges it
    final = run.save_final(accelerator, models.policy, tokenizer)
    say(f"[{a.name}] saved {final}")
    return final


def r_clip(cfg: Config) -> float | None:
    return cfg.rewards.clip if cfg.rewards.clip > 0 else None
