"""`rlhf demo`: the whole pipeline on the built-in toy world, judged by its gold scorer.

    1. build the world; train a tokenizer on its text
    2. pretrain the base model on "web text" (cached, keyed by its config)
    3. SFT on a few hundred demonstrations of mixed quality
    4. sample K responses per rating prompt from the SFT model
    5. simulated raters rank them (the ranking format human raters export)
    6. reward model on the rankings
    7. PPO from the SFT model against the reward model, with a KL penalty to SFT; and PPO-ptx, the
       same plus the NLL of the pretraining web text in every policy step (against forgetting)
    8. DPO on the same rankings; rejection-sampling SFT on the reward model's best of n
    9. RLAIF: the SFT model judges the same candidates; a reward model on its labels; the same RL
   10. reward hacking: raters biased towards long, confident answers, their reward model, weak-KL PPO
   11. the same PPO and DPO with gold itself as the labeler (what perfect labels would give them)
   12. evaluate every model on held-out prompts with the gold scorer

Every stage (stages.py) is an ordinary `rlhf` recipe writing an ordinary run directory under the
demo's; `run_demo` runs them in order, one function per numbered step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rlhf.config import load_config
from rlhf.demo import report
from rlhf.demo.evaluate import best_of_n_curve, evaluate_best_of_n, evaluate_policy, reward_model_accuracies
from rlhf.demo.hacking import HACKED, proxy_vs_gold
from rlhf.demo.presets import PRESETS, Preset
from rlhf.demo.stages import (
    banner,
    gold_rankings,
    heldout_web_text,
    pretrain_base,
    read_candidates,
    run_dpo,
    run_ppo,
    sample_and_rank,
    train_recipe,
    train_reward_model,
    web_text_file,
    write_jsonl,
)
from rlhf.eval.metrics import win_rate_interval
from rlhf.recipes import best_of_n, sft
from rlhf.toyworld import World, build_corpus, build_demonstrations

GOLD_PPO, GOLD_DPO = "ppo (gold reward)", "dpo (gold labels)"


class Clock:
    """Each stage's banner, then its wall time, printed and kept for results.json's ``seconds``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.seconds[name] = t0  # the key's place in results.json: the order the stages ran in
        banner(name)
        yield
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"[demo] {name}: {self.seconds[name]:.1f} s")

    def total(self) -> float:
        self.seconds["total"] = round(time.perf_counter() - self.start, 1)
        return self.seconds["total"]


@dataclass
class Runs:
    """The run directories of the demo's models (``final/`` weights); None: the preset leaves that
    row out."""

    base: Path
    sft: Path
    reward: Path
    ppo: Path | None = None
    ptx: Path | None = None
    dpo: Path | None = None
    rs_sft: Path | None = None
    rlaif: Path | None = None
    hacked: Path | None = None
    gold_ppo: Path | None = None
    gold_dpo: Path | None = None

    def rows(self) -> list[tuple[str, Path]]:
        """(row name, weights) of every policy evaluated, in the results table's order."""
        named = [
            ("base", self.base),
            ("sft", self.sft),
            ("ppo", self.ppo),
            ("ppo-ptx", self.ptx),
            ("dpo", self.dpo),
            ("rs-sft", self.rs_sft),
            ("rlaif", self.rlaif),
            (HACKED, self.hacked),
            (GOLD_PPO, self.gold_ppo),
            (GOLD_DPO, self.gold_dpo),
        ]
        return [(name, path) for name, path in named if path is not None]


def run_demo(output_dir: str, preset_name: str | Preset = "default", seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    preset = preset_name if isinstance(preset_name, Preset) else PRESETS[preset_name]
    preset_name = "custom" if isinstance(preset_name, Preset) else preset_name
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    clock = Clock()

    # 1-2. world and base model
    with clock.stage("base model (pretraining on web text)"):
        world = World.build(seed, **preset.world)
        base_dir = pretrain_base(root, world, preset, seed)
        corpus = build_corpus(
            world
        )  # what the base model read (pretrain_base builds it only when not cached)
        web = heldout_web_text(world, corpus, seed, preset.web_eval_docs)
        write_jsonl(web_text_file(root), [{"prompt": "", "completion": d} for d in web])
    # 3. SFT
    with clock.stage("sft"):
        sft_dir = supervised_fine_tuning(root, world, base_dir, preset, seed)
    # 4-5. sample K responses per rating prompt, simulated raters rank them
    with clock.stage("sample and rank"):
        rankings = sample_and_rank(root, world, sft_dir, preset, seed)
    # 6. reward model, initialised from the SFT model
    with clock.stage("reward model"):
        runs = Runs(base_dir, sft_dir, train_reward_model(root / "reward", sft_dir, rankings, preset, seed))
    # 7. PPO against the reward model; PPO-ptx: the same, plus the NLL of pretraining text
    with clock.stage("ppo"):
        runs.ppo = run_ppo(root, world, sft_dir, runs.reward, preset, seed)
    if preset.ptx_coef > 0:
        with clock.stage("ppo-ptx"):
            runs.ptx = ppo_ptx(root, world, corpus, runs, preset, seed)
    # 8. the alternatives: DPO on the same rankings; rejection-sampling SFT on best-of-n samples
    with clock.stage("dpo"):
        runs.dpo = run_dpo(root, sft_dir, rankings, preset, seed)
    with clock.stage("rejection-sampling sft"):
        runs.rs_sft = rejection_sampling(root, world, runs, preset, seed)
    # 9. RLAIF: the SFT model as the labeler instead of the raters, then the same RL stage
    rlaif = None
    if preset.rlaif:
        with clock.stage("rlaif"):
            rlaif, runs.rlaif = ai_feedback(root, world, runs, rankings, preset, seed)
    # 10. reward hacking: raters who like long, confident answers, their reward model, weak-KL PPO
    if preset.hacking:
        from rlhf.demo.hacking import run_reward_hacking

        with clock.stage("reward hacking"):
            runs.hacked = run_reward_hacking(
                root, world, sft_dir, runs.reward, read_candidates(root), preset, seed
            )
    # 11. the same learners with gold itself as the labeler: what a perfect reward model or
    # perfect raters would give them (the table's "gold reward" / "gold labels" rows)
    if preset.gold_rows:
        with clock.stage("ppo and dpo on gold"):
            runs.gold_ppo, runs.gold_dpo = learn_from_gold(root, world, sft_dir, preset, seed)
    # 12. evaluation on held-out prompts
    with clock.stage("evaluation"):
        evaluated = evaluate(world, web, runs, preset, seed)
    clock.total()
    results = {
        **evaluated,
        "web_text": {"documents": len(web), "file": str(web_text_file(root).relative_to(root))},
        "proxy_vs_gold": {
            name: proxy_vs_gold(root / run / "metrics.jsonl")
            for name, run in [("ppo", "ppo"), *([(HACKED, "ppo-biased")] if runs.hacked else [])]
        },
        **({"rlaif": {k: v for k, v in rlaif.items() if k != "agreement"}} if rlaif else {}),
        "config": {"preset": preset_name, "seed": seed, **asdict(preset)},
        "seconds": clock.seconds,
    }
    report.write(results, root)
    print_results(results, root)
    return results


def supervised_fine_tuning(root: Path, world: World, base_dir: Path, preset: Preset, seed: int) -> Path:
    """Step 3: SFT of the base model on the world's demonstrations (of mixed quality)."""
    demos = write_jsonl(
        root / "data" / "demonstrations.jsonl", [d.record() for d in build_demonstrations(world)]
    )
    return train_recipe(
        sft,
        {
            "model.path": base_dir,
            "data.train": demos,
            "data.max_length": preset.max_length,
            "train.output_dir": root / "sft",
            "train.max_steps": preset.sft_steps,
            "train.batch_size": preset.batch_size,
            "train.lr": preset.sft_lr,
            "train.seed": seed,
            "train.mixed_precision": preset.mixed_precision,
            "model.attn_implementation": preset.attn_implementation,
            "train.log_every": 20,
        },
    )


def ppo_ptx(root: Path, world: World, corpus: list[str], runs: Runs, preset: Preset, seed: int) -> Path:
    """Step 7b: the PPO stage again, plus the NLL of the pretraining web text in every policy step."""
    web_train = write_jsonl(
        root / "data" / "web_pretrain.jsonl", [{"prompt": "", "completion": d} for d in corpus]
    )
    mix = {"ptx.data": web_train, "ptx.coef": preset.ptx_coef, "ptx.batch_size": preset.ptx_batch}
    return run_ppo(root, world, runs.sft, runs.reward, preset, seed, name="ppo-ptx", extra=mix)


def rejection_sampling(root: Path, world: World, runs: Runs, preset: Preset, seed: int) -> Path:
    """Step 8b: the reward model's best of ``rs_n`` SFT samples per RL prompt, then SFT on them."""
    rl_prompts = write_jsonl(
        root / "data" / "rl_prompts.jsonl", [{"prompt": t.prompt} for t in world.tasks("rl")]
    )
    bon_cfg = load_config(
        best_of_n.Config,
        None,
        [
            f"model.path={runs.sft}",
            f"sample.prompts={rl_prompts}",
            f"sample.n={preset.rs_n}",
            f"sample.max_new_tokens={preset.max_new_tokens}",
            f"sample.seed={seed}",
            f"best_of_n.reward_model={runs.reward}",
            f"best_of_n.output_dir={root / 'best-of-n'}",
        ],
    )
    best = best_of_n.best_of_n(bon_cfg) / "best.jsonl"
    return train_recipe(
        sft,
        {
            "model.path": runs.sft,
            "data.train": best,
            "data.max_length": preset.max_length,
            "train.output_dir": root / "rs-sft",
            "train.max_steps": preset.rs_steps,
            "train.batch_size": preset.batch_size,
            "train.lr": preset.sft_lr / 3,
            "train.seed": seed,
            "train.mixed_precision": preset.mixed_precision,
            "model.attn_implementation": preset.attn_implementation,
            "train.log_every": 20,
        },
    )


def ai_feedback(
    root: Path, world: World, runs: Runs, rankings: Path, preset: Preset, seed: int
) -> tuple[dict[str, Any], Path]:
    """Step 9: the SFT model judges the raters' candidates, a reward model on its labels, the same
    PPO against it; returns the agreement figures and the policy."""
    from rlhf.demo.rlaif import run_rlaif

    rlaif = run_rlaif(root, world, runs.sft, root / "data" / "candidates.jsonl", rankings, preset, seed)
    policy = run_ppo(root, world, runs.sft, Path(rlaif["reward_model"]), preset, seed, name="ppo-rlaif")
    return rlaif, policy


def learn_from_gold(root: Path, world: World, sft_dir: Path, preset: Preset, seed: int) -> tuple[Path, Path]:
    """Step 11: PPO rewarded by the gold scorer, DPO on the candidates ranked by it."""
    gold_ppo = run_ppo(root, world, sft_dir, None, preset, seed, name="ppo-gold")
    labels = gold_rankings(root / "data" / "rankings-gold.jsonl", world, read_candidates(root))
    # one gold ranking per prompt against raters_per_prompt rankings: as many optimizer steps
    gold_dpo = run_dpo(
        root, sft_dir, labels, preset, seed, "dpo-gold", preset.dpo_epochs * preset.raters_per_prompt
    )
    return gold_ppo, gold_dpo


def evaluate(world: World, web: list[str], runs: Runs, preset: Preset, seed: int) -> dict[str, Any]:
    """Step 12: every policy's row on the held-out prompts (gold reward, win rate against SFT, KL
    to SFT, web NLL), best-of-n from SFT with its curve over n, the reward model's accuracy."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(runs.sft)
    tasks = world.tasks("eval")
    policies = {name: AutoModelForCausalLM.from_pretrained(path).eval() for name, path in runs.rows()}
    sft_model = policies["sft"]
    rl_max_length = preset.max_length + preset.max_new_tokens  # as the RL runs cut the web text
    stages = [
        evaluate_policy(
            name, m, tok, tasks, sft_model, preset.max_new_tokens, preset.kl_samples, seed, web, rl_max_length
        )
        for name, m in policies.items()
    ]
    rm = AutoModelForSequenceClassification.from_pretrained(runs.reward).eval()
    bon_rows, bon_scores, bon_gold = evaluate_best_of_n(
        f"best-of-{preset.best_of}",
        sft_model,
        rm,
        tok,
        tasks,
        preset.best_of,
        preset.max_new_tokens,
        seed + 2,
    )
    stages += bon_rows
    sft_gold = stages[1]["_gold_scores"]
    bon_curve = best_of_n_curve(bon_scores, bon_gold, sft_gold)
    for s in stages:
        w = win_rate_interval(s.pop("_gold_scores"), sft_gold)
        s["gold_win_rate_vs_sft"] = w.rate
        s["gold_win_interval"] = [w.low, w.high]  # 95%, over prompts
        s["gold_wins_ties_losses"] = [w.wins, w.ties, w.losses]
    rm_acc, rm_by_family = reward_model_accuracies(
        rm, sft_model, tok, tasks, preset.k, preset.max_new_tokens, seed + 1
    )
    return {
        "stages": stages,
        "reward_model": {"heldout_accuracy_vs_gold": rm_acc, "heldout_accuracy_by_family": rm_by_family},
        "best_of_n_curve": bon_curve,
    }


def print_results(results: dict[str, Any], root: Path) -> None:
    """The examples of every row and the results table, on the terminal."""
    banner("results")
    for s in results["stages"]:
        print(f"[{s['name']}] examples:")
        for ex in s["examples"]:
            print(f"    {ex['prompt'].strip()!r} -> {ex['response']!r}  (gold {ex['gold']:+.2f})")
    print()
    print(report.table(results))
    total = results["seconds"]["total"]
    print(f"\n[demo] wrote {root / 'results.json'}, results.md and report.html in {total:.0f} s")
