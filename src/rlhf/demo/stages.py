"""The demo's stages, each an ordinary `rlhf` recipe (or a simulated labeler) writing an ordinary run
directory under the demo's: base-model pretraining (cached), reward model, sampling and simulated
ranking, PPO, DPO, and gold's own rankings. `pipeline.py` runs them in order."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlhf.config import load_config
from rlhf.demo.presets import Preset
from rlhf.models.tiny import build_tiny_model, train_tokenizer
from rlhf.recipes import dpo, ppo, reward, sft
from rlhf.rollout.generate import HFGenerateEngine, SamplingParams
from rlhf.toyworld import RaterPool, World, build_corpus, gold_score, tokenizer_texts
from rlhf.toyworld.raters import competition_ranks


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _cache_dir(root: Path) -> Path:
    return Path(os.environ.get("RLHF_CACHE", root / "cache"))


def train_recipe(recipe, overrides: dict[str, Any]) -> Path:
    cfg = load_config(recipe.Config, None, [f"{k}={v}" for k, v in overrides.items()])
    return recipe.train(cfg)


PRETRAIN_FIELDS = (
    "vocab_size",
    "model_size",
    "mixed_precision",
    "attn_implementation",
    "max_length",
    "max_new_tokens",
    "pretrain_steps",
    "pretrain_lr",
    "batch_size",
)
"""the preset fields that decide the pretrained base model (its cache key)"""


def pretrain_base(root: Path, world: World, preset: Preset, seed: int) -> Path:
    """A base model that has read the world's web text; reused when the same config was trained."""
    # keyed by what shapes pretraining only, so later stages' settings can change without a rerun
    used = {k: getattr(preset, k) for k in PRETRAIN_FIELDS}
    key = hashlib.sha256(
        json.dumps(
            {"preset": used, "seed": seed, "world": asdict(world.sizes), "v": 2}, sort_keys=True
        ).encode()
    ).hexdigest()[:12]
    cached = _cache_dir(root) / f"base-{key}"
    if (cached / "config.json").is_file():
        print(f"[demo] base model from cache {cached}")
        return cached
    corpus = build_corpus(world)
    tok = train_tokenizer(tokenizer_texts(world, corpus), preset.vocab_size)
    init = root / "base" / "init"
    build_tiny_model(
        tok,
        "gpt2",
        preset.model_size,
        seed=seed,
        n_positions=max(128, preset.max_length + preset.max_new_tokens),
    ).save_pretrained(init)
    tok.save_pretrained(init)
    # pretraining is SFT with an empty prompt: every token of every document is a target
    data = write_jsonl(root / "data" / "pretrain.jsonl", [{"prompt": "", "completion": d} for d in corpus])
    final = train_recipe(
        sft,
        {
            "model.path": init,
            "data.train": data,
            "data.max_length": preset.max_length,
            "sft.packing": True,
            "train.output_dir": root / "base",
            "train.max_steps": preset.pretrain_steps,
            "train.batch_size": preset.batch_size,
            "train.lr": preset.pretrain_lr,
            "train.warmup_steps": preset.pretrain_steps // 20,
            "train.seed": seed,
            "train.mixed_precision": preset.mixed_precision,
            "model.attn_implementation": preset.attn_implementation,
            "train.log_every": 50,
        },
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(final, tmp)
    tmp.rename(cached)
    return cached


def heldout_web_text(world: World, corpus: list[str], seed: int, n: int) -> list[str]:
    """``n`` web-text documents the base model never read: drawn from the corpus generator with
    another seed, leaving out any document of the pretraining ``corpus`` (short fact documents
    recur: the world is small)."""
    seen = set(corpus)
    fresh = dict.fromkeys(build_corpus(world, n_docs=3 * n, seed=f"{seed}:heldout"))
    return [d for d in fresh if d not in seen][:n]


def web_text_file(root: Path) -> Path:
    """Where ``run_demo`` writes the held-out web text (demonstration records with empty prompts)."""
    return root / "data" / "web_heldout.jsonl"


def train_reward_model(out: Path, sft_dir: Path, rankings: Path, preset: Preset, seed: int) -> Path:
    """The demo's reward stage (also used on the RLAIF labels): one epoch from the SFT model."""
    return train_recipe(
        reward,
        {
            "model.path": sft_dir,
            "data.train": rankings,
            "data.max_length": preset.max_length,
            "train.output_dir": out,
            "train.epochs": preset.reward_epochs,
            "train.batch_size": preset.batch_size,
            "train.lr": preset.reward_lr,
            "train.seed": seed,
            "train.mixed_precision": preset.mixed_precision,
            "model.attn_implementation": preset.attn_implementation,
            "train.log_every": 20,
        },
    )


def sample_and_rank(root: Path, world: World, policy_dir: Path, preset: Preset, seed: int) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tasks = world.tasks("rating")
    gens = HFGenerateEngine(model, tok).generate(
        [t.prompt for t in tasks], SamplingParams(preset.max_new_tokens, n=preset.k, seed=seed)
    )
    candidates = [[g.text for g in gs] for gs in gens]
    write_jsonl(
        root / "data" / "candidates.jsonl",
        [{"prompt": t.prompt, "responses": c} for t, c in zip(tasks, candidates)],
    )
    return rank(root / "data" / "rankings.jsonl", world, candidates, RaterPool.build(seed=seed), preset, seed)


def read_candidates(root: Path) -> list[list[str]]:
    """The K responses per rating prompt that ``sample_and_rank`` wrote."""
    lines = (root / "data" / "candidates.jsonl").read_text().splitlines()
    return [json.loads(line)["responses"] for line in lines]


def rank(
    path: Path, world: World, candidates: list[list[str]], pool: RaterPool, preset: Preset, seed: int
) -> Path:
    """``pool``'s rankings of the candidate sets of the rating prompts, written to ``path``."""
    records = pool.label(
        world.tasks("rating"), candidates, seed=seed, raters_per_prompt=preset.raters_per_prompt
    )
    return write_jsonl(path, records)


def run_ppo(
    root: Path,
    world: World,
    sft_dir: Path,
    rm_dir: Path | None,
    preset: Preset,
    seed: int,
    name: str = "ppo",
    extra: dict[str, Any] | None = None,
) -> Path:
    """PPO on the RL prompts; every step also logs the gold reward of its samples (proxy vs gold).
    ``rm_dir`` None: rewarded by the gold scorer itself (its critic then starts from the policy).
    ``extra``: more config overrides."""
    tasks = {t.prompt: t for t in world.tasks("rl")}
    prompts = write_jsonl(root / "data" / "rl_prompts.jsonl", [{"prompt": p} for p in tasks])

    def gold_reward(prompts: list[str], completions: list[str], **_) -> list[float]:
        return [gold_score(tasks[p], c) for p, c in zip(prompts, completions)]

    def gold(prompts: list[str], completions: list[str]) -> dict[str, float]:
        scores = gold_reward(prompts, completions)
        return {"gold": sum(scores) / len(scores)}

    # without a reward model there is none to copy as the critic: it starts from the policy
    critic = "policy" if rm_dir is None and preset.ppo_critic == "reward" else preset.ppo_critic
    cfg = load_config(
        ppo.Config,
        None,
        [
            f"{k}={v}"
            for k, v in {
                "model.path": sft_dir,
                "data.train": prompts,
                "data.max_length": preset.max_length + preset.max_new_tokens,  # also cuts ptx.eval's web text
                "rewards.model": rm_dir or "",
                "train.output_dir": root / name,
                "train.max_steps": preset.ppo_steps,
                "train.batch_size": preset.ppo_batch,
                "train.lr": preset.ppo_lr,
                "train.schedule": "constant",
                "train.seed": seed,
                "train.mixed_precision": preset.mixed_precision,
                "model.attn_implementation": preset.attn_implementation,
                "train.log_every": 1,
                "critic.lr": preset.ppo_critic_lr,
                "critic.init": critic,
                "algo.name": preset.ppo_algo,
                "rollout.samples_per_prompt": preset.ppo_samples,
                "algo.kl_coef": preset.ppo_kl_coef,
                "algo.epochs": preset.ppo_epochs,
                "algo.minibatches": preset.ppo_minibatches,
                "rollout.max_new_tokens": preset.max_new_tokens,
                "rollout.samples_every": max(1, preset.ppo_steps // 4),
                # forgetting: NLL on held-out web text at the first and the last step (eval_nll)
                "ptx.eval": web_text_file(root),
                **(extra or {}),
            }.items()
        ],
    )
    return ppo.train(cfg, sample_metrics=gold, reward_fn=None if rm_dir else gold_reward)


def run_dpo(
    root: Path,
    sft_dir: Path,
    rankings: Path,
    preset: Preset,
    seed: int,
    name: str = "dpo",
    epochs: float | None = None,
) -> Path:
    """DPO from the SFT model on ``rankings`` (expanded to pairs)."""
    return train_recipe(
        dpo,
        {
            "model.path": sft_dir,
            "data.train": rankings,
            "data.max_length": preset.max_length,
            "train.output_dir": root / name,
            "train.epochs": preset.dpo_epochs if epochs is None else epochs,
            "train.batch_size": preset.batch_size,
            "train.lr": preset.dpo_lr,
            "dpo.beta": preset.dpo_beta,
            "train.seed": seed,
            "train.mixed_precision": preset.mixed_precision,
            "model.attn_implementation": preset.attn_implementation,
            "train.log_every": 20,
        },
    )


def gold_rankings(path: Path, world: World, candidates: list[list[str]]) -> Path:
    """Each rating prompt's K candidates ranked by the gold score itself (ties share a rank): the
    labels perfect raters would give."""
    records = []
    for task, responses in zip(world.tasks("rating"), candidates):
        ranks = competition_ranks([gold_score(task, r) for r in responses])
        records.append({"prompt": task.prompt, "responses": responses, "ranks": ranks, "annotator": "gold"})
    return write_jsonl(path, records)
