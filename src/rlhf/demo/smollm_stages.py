"""The stages of `rlhf demo --preset smollm`, each an ordinary recipe (or the simulated raters)
writing an ordinary run directory under the demo's; `smollm.py` runs them in order.

Every stage function takes the run (``SmolRun``: its directory, preset, seed and prompt sets) and
the directories of the stages it builds on, and returns what it wrote. ``SmolRun.stage`` times a
stage and skips it when its output is already there, so a rerun on the same output directory
picks up where an interrupted one stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlhf.config import load_config
from rlhf.demo.smollm_eval import engine_for
from rlhf.demo.smollm_preset import SmolPreset
from rlhf.demo.stages import banner, train_recipe, write_jsonl
from rlhf.realtask import replay
from rlhf.realtask.demonstrations import REFUSAL, usable
from rlhf.realtask.demonstrations import build as build_demonstrations
from rlhf.realtask.family import Task
from rlhf.realtask.gold import gold_score
from rlhf.realtask.prompts import chat, user_message
from rlhf.recipes import dpo, ppo, reward, sft
from rlhf.rollout.generate import SamplingParams
from rlhf.toyworld import RaterPool


@dataclass
class SmolRun:
    root: Path
    p: SmolPreset
    seed: int
    sets: dict[str, list[Task]]
    """the disjoint training prompt sets: "sft", "rating", "rl" """
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def stage(self, name: str, fn: Callable[[], Any], reuse: Path | None = None) -> Any:
        """Run stage ``name``, unless ``reuse`` (a data file, or a run's final/) is already there."""
        banner(name)
        if reuse is not None and (reuse / "config.json" if reuse.suffix == "" else reuse).is_file():
            print(f"[demo] {name}: reusing {reuse}", flush=True)
            self.seconds[name] = 0.0
            return reuse
        t = time.perf_counter()
        out = fn()
        self.seconds[name] = round(time.perf_counter() - t, 1)
        print(f"[demo] {name}: {self.seconds[name]:.1f} s", flush=True)
        return out

    def common(self) -> dict[str, Any]:
        """Overrides every training stage shares: LoRA, bf16 autocast, lengths, seed."""
        p = self.p
        return {
            "model.lora_r": p.lora_r,
            "model.lora_alpha": p.lora_alpha,
            "model.lora_target_modules": f"[{p.lora_targets}]",
            "data.max_length": p.max_length,
            "train.mixed_precision": p.mixed_precision,
            "train.seed": self.seed,
            "train.log_every": 10,
        }


def base_model(p: SmolPreset) -> Path:
    """The preset's base model directory: its own, or the packaged SmolLM2 (converted once, cached)."""
    if p.base:
        return Path(p.base)
    from rlhf.models.smollm import checkpoint_dir

    return checkpoint_dir()


def engine(model_dir: Path, p: SmolPreset):
    """The rollout engine of the model in ``model_dir``, in the preset's precision."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    return engine_for(model, tok, p.mixed_precision)


def generate(model_dir: Path, prompts: list, params: SamplingParams, p: SmolPreset):
    """``params`` generations for each prompt from the model in ``model_dir`` (the rollout engine)."""
    with torch.no_grad():
        return engine(model_dir, p).generate(prompts, params)


def demonstrations(run: SmolRun, base_dir: Path) -> Path:
    """A refusal for each harmful SFT prompt, the base model's own greedy answer for each benign one
    and, as replay, for each of the first ``n_replay`` general questions (one batch of generation)."""
    p = run.p
    if not 0 <= p.n_replay <= len(replay.QUESTIONS):
        raise ValueError(f"n_replay is {p.n_replay}; there are {len(replay.QUESTIONS)} replay questions")
    benign = [t for t in run.sets["sft"] if not t.harmful]
    questions = replay.QUESTIONS[: p.n_replay]
    prompts = [chat(t) for t in benign] + [chat(q) for q, _ in questions]
    gens = generate(base_dir, prompts, SamplingParams(p.demo_tokens, temperature=0.0), p)
    texts = [g[0].text for g in gens]
    answers = {t.prompt: [text] for t, text in zip(benign, texts)}
    if p.demo_samples:
        # a look-alike whose greedy answer misses gets sampled answers: otherwise the hardest
        # look-alikes teach nothing while every harmful request teaches a refusal
        missed = [t for t in benign if not usable(t, answers[t.prompt][0], p.demo_words)]
        if missed:
            params = SamplingParams(p.demo_tokens, p.demo_temperature, n=p.demo_samples, seed=run.seed)
            for t, gs in zip(missed, generate(base_dir, [chat(t) for t in missed], params, p)):
                answers[t.prompt] += [g.text for g in gs]
    records, left_out = build_demonstrations(
        run.sets["sft"], answers, p.demo_words, run.seed, p.sft_refusal_kl_weight
    )
    replayed = {q: text for (q, _), text in zip(questions, texts[len(benign) :])}
    replay_records, replay_left_out = replay.build(questions, replayed, p.demo_words)
    print(
        f"[demo] {len(records)} demonstrations; {left_out} base answers left out (not on topic, or looping); "
        f"{len(replay_records)} replayed general answers ({replay_left_out} left out: wrong, looping, "
        "or naming an evaluation answer)"
    )
    return write_jsonl(run.data / "demonstrations.jsonl", records + replay_records * p.replay_repeats)


def train_sft(run: SmolRun, base_dir: Path, demos: Path) -> Path:
    p = run.p
    overrides = {
        "model.path": base_dir,
        "data.train": demos,
        "train.output_dir": run.root / "sft",
        "train.max_steps": p.sft_steps,
        "train.batch_size": p.batch_size,
        "train.lr": p.sft_lr,
        "train.schedule": p.sft_schedule,
        "train.warmup_steps": p.sft_warmup,
        "sft.kl_coef": p.sft_kl_coef,
    }
    return train_recipe(sft, {**run.common(), **overrides})


def sample_and_rank(run: SmolRun, sft_dir: Path, base_dir: Path) -> Path:
    """K samples per rating prompt (and SFT prompt, with ``rate_sft_prompts``, and RL prompt, with
    ``rate_rl_prompts``) from SFT, and ``base_samples`` more from the base model and, with
    ``refusal_candidate``, the plain refusal, ranked together by the simulated raters (truth: the
    gold rule)."""
    p = run.p
    tasks = rated_tasks(run)
    prompts = [chat(t) for t in tasks]
    params = SamplingParams(p.max_new_tokens, n=p.k, seed=run.seed)
    candidates = [[g.text for g in gs] for gs in generate(sft_dir, prompts, params, p)]
    if p.base_samples:
        # SFT's samples of one prompt mostly agree (all refuse, or all answer): the base model's,
        # which answer harmful requests and look-alikes alike, put the two choices side by side
        params = SamplingParams(p.max_new_tokens, n=p.base_samples, seed=run.seed + 1)
        for c, gs in zip(candidates, generate(base_dir, prompts, params, p)):
            c += [g.text for g in gs]
    if p.refusal_candidate:  # the refusal on every prompt: right on harmful ones, wrong on look-alikes
        for c in candidates:
            c.append(REFUSAL)
    write_jsonl(
        run.data / "candidates.jsonl",
        [{"prompt": chat(t), "responses": c} for t, c in zip(tasks, candidates)],
    )
    records = rank(tasks, candidates, p.raters_per_prompt, run.seed)
    print(f"[demo] {len(records)} rankings of {len(tasks)} prompts (the others: one distinct sample)")
    return write_jsonl(run.data / "rankings.jsonl", records)


def rated_tasks(run: SmolRun) -> list[Task]:
    """The prompts whose samples the raters rank: the rating set, then the SFT set with
    ``rate_sft_prompts``, then the RL set with ``rate_rl_prompts``."""
    p = run.p
    return (
        run.sets["rating"]
        + (run.sets["sft"] if p.rate_sft_prompts else [])
        + (run.sets["rl"] if p.rate_rl_prompts else [])
    )


def trained_rl_tasks(run: SmolRun) -> list[Task]:
    """The prompts the RL stage trains on: the RL set, then the rating set with ``rl_on_rating_prompts``."""
    return run.sets["rl"] + (run.sets["rating"] if run.p.rl_on_rating_prompts else [])


def rank(tasks: list[Task], candidates: list[list[str]], raters_per_prompt: int, seed: int) -> list[dict]:
    """The simulated raters' rankings of each task's samples, ``raters_per_prompt`` raters each."""
    # a sharp SFT model often samples the same refusal twice: the raters see each distinct text once
    # (two copies ordered only by a rater's noise teach the reward model nothing and cost it a
    # forward each), and a prompt whose K samples are all the same text has nothing to rank
    distinct = [list(dict.fromkeys(c)) for c in candidates]
    keep = [i for i, c in enumerate(distinct) if len(c) >= 2]
    return RaterPool.build(seed=seed).label(
        [tasks[i] for i in keep],
        [distinct[i] for i in keep],
        seed=seed,
        raters_per_prompt=raters_per_prompt,
        gold=gold_score,
        prompt=chat,
    )


def train_reward(run: SmolRun, sft_dir: Path, rankings: Path) -> Path:
    """The reward model, with the SFT model as its backbone."""
    p = run.p
    overrides = {
        "model.path": sft_dir,
        "data.train": rankings,
        "train.output_dir": run.root / "reward",
        "train.epochs": p.reward_epochs,
        "train.batch_size": p.batch_size,
        "train.lr": p.reward_lr,
        "train.schedule": p.reward_schedule,
        "train.warmup_steps": p.reward_warmup,
        # the mean and std that PPO normalises scores with: 64 rankings (some 220 responses) give
        # them closely enough, for a third of a pass over all of them
        "reward.stats_records": 64,
    }
    return train_recipe(reward, {**run.common(), **overrides})


def train_ppo(run: SmolRun, sft_dir: Path, rm_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """PPO from SFT against the reward model, a per-token KL penalty to SFT; each step's samples
    also get the gold rule's mean (``gold`` in metrics.jsonl) beside the reward model's score.
    ``extra``: `rlhf ppo` config keys set over the preset's (bench/smollm_variant.py)."""
    p = run.p
    tasks = trained_rl_tasks(run)
    rl_tasks = {t.prompt: t for t in tasks}
    rl_prompts = write_jsonl(run.data / "rl_prompts.jsonl", [{"prompt": chat(t)} for t in tasks])
    ptx = {}
    if p.ppo_ptx_coef > 0:
        ptx = {"ptx.coef": p.ppo_ptx_coef, "ptx.data": replayed_answers(run)}

    def gold_metric(prompts: list[str], completions: list[str]) -> dict[str, float]:
        scores = [gold_score(rl_tasks[user_message(q)], c) for q, c in zip(prompts, completions)]
        return {"gold": sum(scores) / len(scores)}

    overrides = {
        **run.common(),
        "model.path": sft_dir,
        "data.train": rl_prompts,
        "rewards.model": rm_dir,
        "train.output_dir": run.root / "ppo",
        "train.max_steps": p.ppo_steps,
        "train.batch_size": p.ppo_batch,
        "train.lr": p.ppo_lr,
        "train.schedule": "constant",
        "train.log_every": 1,
        "critic.init": p.ppo_critic,
        "critic.lr": p.ppo_critic_lr,
        "rollout.samples_per_prompt": p.ppo_samples,
        "rollout.max_new_tokens": p.max_new_tokens,
        "rollout.samples_every": max(1, p.ppo_steps // 4),
        "algo.kl_coef": p.ppo_kl_coef,
        "algo.lam": p.ppo_lam,
        **ptx,
        **(extra or {}),
    }
    cfg = load_config(ppo.Config, None, [f"{k}={v}" for k, v in overrides.items()])
    return ppo.train(cfg, sample_metrics=gold_metric)


def replayed_answers(run: SmolRun) -> Path:
    """The demonstrations that answer a replayed general question (the base model's own answers),
    as PPO-ptx data."""
    questions = {q for q, _ in replay.QUESTIONS}
    lines = (run.data / "demonstrations.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if user_message(r["prompt"]) in questions]
    if not records:
        raise ValueError(f"ppo_ptx_coef > 0, but {run.data / 'demonstrations.jsonl'} has no replayed answer")
    return write_jsonl(run.data / "ptx.jsonl", records)


def train_dpo(run: SmolRun, sft_dir: Path, rankings: Path) -> Path:
    """DPO from SFT on the same rankings (expanded to pairs), SFT as the reference."""
    p = run.p
    overrides = {
        "model.path": sft_dir,
        "data.train": rankings,
        "train.output_dir": run.root / "dpo",
        "train.max_steps": p.dpo_steps,
        "train.batch_size": p.batch_size,
        "train.lr": p.dpo_lr,
        "dpo.beta": p.dpo_beta,
        "dpo.reference": p.dpo_reference,
    }
    return train_recipe(dpo, {**run.common(), **overrides})
