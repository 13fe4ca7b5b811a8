"""`rlhf demo --preset smollm`: make SmolLM2-135M-Instruct decline harmful requests while it keeps
answering their benign look-alikes (rlhf.realtask), with the seed pipeline on a real chat model.

    1. the base model: the packaged SmolLM2-135M-Instruct GGUF file, converted once (cached)
    2. demonstrations: a plain refusal for each harmful SFT prompt, the base model's own answer
       (trimmed to whole sentences) for each benign one; SFT with LoRA
    3. K samples per rating prompt from SFT, ranked by simulated raters whose truth is the gold rule
    4. a reward model with the SFT model as its backbone (LoRA)
    5. PPO from SFT against the reward model with a per-token KL penalty to SFT
    6. DPO on the same rankings; best-of-n (SFT samples, the reward model's pick) at inference
    7. every row on the held-out prompts (templates and fillers never trained on): harmful
       declined, benign answered, gold reward, KL to SFT and to the base, general questions kept,
       held-out text NLL

Every stage is an ordinary recipe writing an ordinary run directory; ``<output_dir>/<stage>/final``
is a Hugging Face model. The results have the toy demo's shape (``results.json``, ``results.md``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rlhf.config import load_config
from rlhf.demo.smollm_eval import engine_for, evaluate_best_of_n, evaluate_model
from rlhf.demo.smollm_preset import SMOL_PRESETS, SmolPreset
from rlhf.demo.smollm_report import write as write_report
from rlhf.demo.stages import banner, train_recipe, write_jsonl
from rlhf.eval.metrics import win_rate_interval
from rlhf.realtask import general
from rlhf.realtask.demonstrations import build as build_demonstrations
from rlhf.realtask.gold import gold_score
from rlhf.realtask.prompts import chat, heldout_sample, stage_sets, user_message
from rlhf.recipes import dpo, ppo, reward, sft
from rlhf.rollout.generate import SamplingParams
from rlhf.toyworld import RaterPool


def _common(p: SmolPreset, seed: int) -> dict[str, Any]:
    """Overrides every training stage shares: LoRA, bf16 autocast, lengths, seed."""
    return {
        "model.lora_r": p.lora_r,
        "model.lora_alpha": p.lora_alpha,
        "train.mixed_precision": p.mixed_precision,
        "train.seed": seed,
    }


def base_model(p: SmolPreset) -> Path:
    if p.base:
        return Path(p.base)
    from rlhf.models.smollm import checkpoint_dir

    return checkpoint_dir()


def _generate(model_dir: Path, prompts: list, params: SamplingParams, p: SmolPreset):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return engine_for(model, tok, p.mixed_precision).generate(prompts, params)


def evaluation_rows(
    root: Path,
    p: SmolPreset,
    seed: int,
    heldout: list,
    dirs: dict[str, Path],
    rm_dir: Path,
    only: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Every row on the held-out prompts: ``dirs`` ({"base", "sft", ...}: model directories),
    then best-of-n from SFT picked by the reward model. Each row is kept in
    ``<root>/eval/<name>.json`` and read back by a rerun (``only``: just these rows)."""
    import json

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    # the trained stages' tokenizer has a pad token the base's vocabulary lacks (loading.py adds
    # one distinct from EOS), so the base model reads through its own
    tok, base_tok = AutoTokenizer.from_pretrained(dirs["sft"]), AutoTokenizer.from_pretrained(dirs["base"])
    load = lambda d: AutoModelForCausalLM.from_pretrained(d).eval()  # noqa: E731
    models: dict[str, Any] = {}
    refs = lambda: {k: models.setdefault(k, load(dirs[k])) for k in ("sft", "base")}  # noqa: E731
    names = [*dirs, f"best-of-{p.best_of}"]
    rows = []
    for name in names if only is None else [n for n in names if n in only]:
        cache = root / "eval" / f"{name}.json"
        if cache.is_file():
            rows.append(json.loads(cache.read_text()))
            continue
        if name in dirs:
            model = refs()[name] if name in ("sft", "base") else load(dirs[name])
            t = base_tok if name == "base" else tok
            row = {**evaluate_model(name, model, t, heldout, refs(), p, seed), "model_dir": str(dirs[name])}
        else:
            rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
            row = evaluate_best_of_n(name, refs()["sft"], rm, tok, heldout, p, seed)
            row.update(model_dir=str(dirs["sft"]), reward_model_dir=str(rm_dir))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(row))
        rows.append(row)
    return rows


def run_smollm_demo(output_dir: str, preset: str | SmolPreset = "smollm", seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    p = preset if isinstance(preset, SmolPreset) else SMOL_PRESETS[preset]
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name: str, fn, reuse: Path | None = None):
        """Run stage ``name``, unless ``reuse`` (a data file, or a run's final/) is already there:
        a rerun of the demo on its output directory picks up where an interrupted one stopped."""
        banner(name)
        if reuse is not None and (reuse / "config.json" if reuse.suffix == "" else reuse).is_file():
            print(f"[demo] {name}: reusing {reuse}", flush=True)
            seconds[name] = 0.0
            return reuse
        t = time.perf_counter()
        out = fn()
        seconds[name] = round(time.perf_counter() - t, 1)
        print(f"[demo] {name}: {seconds[name]:.1f} s", flush=True)
        return out

    # 1. base model and the prompt sets
    base_dir = timed("base model (GGUF conversion, cached)", lambda: base_model(p))
    sets = stage_sets({"sft": p.n_sft, "rating": p.n_rating, "rl": p.n_rl}, seed)
    heldout = heldout_sample(p.heldout_per_family, seed)
    data = root / "data"
    write_jsonl(data / "heldout_prompts.jsonl", [{"prompt": chat(t)} for t in heldout])

    # 2. demonstrations (the base model's own answers to the benign prompts) and SFT
    def demonstrations() -> Path:
        benign = [t for t in sets["sft"] if not t.harmful]
        gens = _generate(
            base_dir, [chat(t) for t in benign], SamplingParams(p.demo_tokens, temperature=0.0), p
        )
        answers = {t.prompt: g[0].text for t, g in zip(benign, gens)}
        records, left_out = build_demonstrations(sets["sft"], answers, p.demo_words, seed)
        print(
            f"[demo] {len(records)} demonstrations; {left_out} base answers left out (not on topic, or "
            "looping)"
        )
        return write_jsonl(data / "demonstrations.jsonl", records)

    demos = timed("demonstrations", demonstrations, data / "demonstrations.jsonl")
    sft_dir = timed(
        "sft",
        lambda: train_recipe(
            sft,
            {
                "model.path": base_dir,
                "data.train": demos,
                "data.max_length": p.max_length,
                "train.output_dir": root / "sft",
                "train.max_steps": p.sft_steps,
                "train.batch_size": p.batch_size,
                "train.lr": p.sft_lr,
                "train.log_every": 10,
                **_common(p, seed),
            },
        ),
        root / "sft" / "final",
    )

    # 3. K samples per rating prompt, ranked by the simulated raters (truth: the gold rule)
    def sample_and_rank() -> Path:
        tasks = sets["rating"]
        gens = _generate(
            sft_dir, [chat(t) for t in tasks], SamplingParams(p.max_new_tokens, n=p.k, seed=seed), p
        )
        candidates = [[g.text for g in gs] for gs in gens]
        write_jsonl(
            data / "candidates.jsonl",
            [{"prompt": chat(t), "responses": c} for t, c in zip(tasks, candidates)],
        )
        records = RaterPool.build(seed=seed).label(
            tasks, candidates, seed=seed, raters_per_prompt=p.raters_per_prompt, gold=gold_score, prompt=chat
        )
        return write_jsonl(data / "rankings.jsonl", records)

    rankings = timed("sample and rank", sample_and_rank, data / "rankings.jsonl")

    # 4. reward model on the SFT backbone
    rm_dir = timed(
        "reward model",
        lambda: train_recipe(
            reward,
            {
                "model.path": sft_dir,
                "data.train": rankings,
                "data.max_length": p.max_length,
                "train.output_dir": root / "reward",
                "train.epochs": p.reward_epochs,
                "train.batch_size": p.batch_size,
                "train.lr": p.reward_lr,
                "train.log_every": 10,
                **_common(p, seed),
            },
        ),
        root / "reward" / "final",
    )

    # 5. PPO from SFT against the reward model, per-token KL penalty to SFT; gold logged beside
    rl_tasks = {t.prompt: t for t in sets["rl"]}
    rl_prompts = write_jsonl(data / "rl_prompts.jsonl", [{"prompt": chat(t)} for t in sets["rl"]])

    def gold_metric(prompts: list[str], completions: list[str]) -> dict[str, float]:
        scores = [gold_score(rl_tasks[user_message(q)], c) for q, c in zip(prompts, completions)]
        return {"gold": sum(scores) / len(scores)}

    def run_ppo() -> Path:
        overrides = {
            "model.path": sft_dir,
            "data.train": rl_prompts,
            "data.max_length": p.max_length,
            "rewards.model": rm_dir,
            "train.output_dir": root / "ppo",
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
            **_common(p, seed),
        }
        cfg = load_config(ppo.Config, None, [f"{k}={v}" for k, v in overrides.items()])
        return ppo.train(cfg, sample_metrics=gold_metric)

    ppo_dir = timed("ppo", run_ppo, root / "ppo" / "final")

    # 6. DPO on the same rankings (expanded to pairs)
    dpo_dir = timed(
        "dpo",
        lambda: train_recipe(
            dpo,
            {
                "model.path": sft_dir,
                "data.train": rankings,
                "data.max_length": p.max_length,
                "train.output_dir": root / "dpo",
                "train.epochs": p.dpo_epochs,
                "train.batch_size": p.batch_size,
                "train.lr": p.dpo_lr,
                "dpo.beta": p.dpo_beta,
                "train.log_every": 10,
                **_common(p, seed),
            },
        ),
        root / "dpo" / "final",
    )

    # 7. every row on the held-out prompts
    dirs = {"base": base_dir, "sft": sft_dir, "ppo": ppo_dir, "dpo": dpo_dir}
    rows = timed("evaluation", lambda: evaluation_rows(root, p, seed, heldout, dirs, rm_dir))
    base_right = rows[0]["_general_right"]
    sft_gold = rows[1]["_gold_scores"]
    for row in rows:
        right = row.pop("_general_right", None)
        if right is not None:
            row["general_right"] = sum(right)
            # a base model that answers nothing right (a tiny test model) has nothing to keep
            row["general_kept"] = general.kept(base_right, right) if any(base_right) else None
        w = win_rate_interval(row.pop("_gold_scores"), sft_gold)
        row["gold_win_rate_vs_sft"] = w.rate
        row["gold_win_interval"] = [w.low, w.high]
        row["gold_wins_ties_losses"] = [w.wins, w.ties, w.losses]

    seconds["total"] = round(time.perf_counter() - t_all, 1)
    results = {
        "stages": rows,
        "heldout": {
            "prompts": len(heldout),
            "harmful": sum(t.harmful for t in heldout),
            "benign": sum(not t.harmful for t in heldout),
            "file": "data/heldout_prompts.jsonl",
        },
        "general": {"questions": len(general.QUESTIONS), "base_right": sum(base_right)},
        "web_text": {"documents": len(general.HELDOUT_TEXT), "file": "rlhf.realtask.general.HELDOUT_TEXT"},
        "config": {"preset": preset if isinstance(preset, str) else "custom", "seed": seed, **asdict(p)},
        "seconds": seconds,
    }
    write_report(results, root)
    return results
