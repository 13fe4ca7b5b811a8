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

Every stage (stages.py) is an ordinary `rlhf` recipe writing an ordinary run directory under the demo's.
"""

from __future__ import annotations

import time
from dataclasses import asdict
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


def run_demo(output_dir: str, preset_name: str | Preset = "default", seed: int = 0) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    preset = preset_name if isinstance(preset_name, Preset) else PRESETS[preset_name]
    preset_name = "custom" if isinstance(preset_name, Preset) else preset_name
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str) -> None:
        seconds[name] = time.perf_counter()
        banner(name)

    def done(name: str) -> None:
        seconds[name] = round(time.perf_counter() - seconds[name], 1)
        print(f"[demo] {name}: {seconds[name]:.1f} s")

    # 1-2. world and base model
    stage("base model (pretraining on web text)")
    world = World.build(seed, **preset.world)
    base_dir = pretrain_base(root, world, preset, seed)
    corpus = build_corpus(world)  # what the base model read (pretrain_base builds it only when not cached)
    web = heldout_web_text(world, corpus, seed, preset.web_eval_docs)
    write_jsonl(web_text_file(root), [{"prompt": "", "completion": d} for d in web])
    done("base model (pretraining on web text)")

    # 3. SFT
    stage("sft")
    demos = write_jsonl(
        root / "data" / "demonstrations.jsonl", [d.record() for d in build_demonstrations(world)]
    )
    sft_dir = train_recipe(
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
    done("sft")

    # 4-5. sample K responses per rating prompt, simulated raters rank them
    stage("sample and rank")
    rankings = sample_and_rank(root, world, sft_dir, preset, seed)
    done("sample and rank")

    # 6. reward model, initialised from the SFT model
    stage("reward model")
    rm_dir = train_reward_model(root / "reward", sft_dir, rankings, preset, seed)
    done("reward model")

    # 7. PPO against the reward model; PPO-ptx: the same, plus the NLL of pretraining text
    stage("ppo")
    ppo_dir = run_ppo(root, world, sft_dir, rm_dir, preset, seed)
    done("ppo")
    ptx_dir = None
    if preset.ptx_coef > 0:
        stage("ppo-ptx")
        web_train = write_jsonl(
            root / "data" / "web_pretrain.jsonl", [{"prompt": "", "completion": d} for d in corpus]
        )
        mix = {"ptx.data": web_train, "ptx.coef": preset.ptx_coef, "ptx.batch_size": preset.ptx_batch}
        ptx_dir = run_ppo(root, world, sft_dir, rm_dir, preset, seed, name="ppo-ptx", extra=mix)
        done("ppo-ptx")

    # 8. the alternatives: DPO on the same rankings; rejection-sampling SFT on best-of-n samples
    stage("dpo")
    dpo_dir = run_dpo(root, sft_dir, rankings, preset, seed)
    done("dpo")
    stage("rejection-sampling sft")
    rl_prompts = write_jsonl(
        root / "data" / "rl_prompts.jsonl", [{"prompt": t.prompt} for t in world.tasks("rl")]
    )
    bon_cfg = load_config(
        best_of_n.Config,
        None,
        [
            f"model.path={sft_dir}",
            f"sample.prompts={rl_prompts}",
            f"sample.n={preset.rs_n}",
            f"sample.max_new_tokens={preset.max_new_tokens}",
            f"sample.seed={seed}",
            f"best_of_n.reward_model={rm_dir}",
            f"best_of_n.output_dir={root / 'best-of-n'}",
        ],
    )
    best = best_of_n.best_of_n(bon_cfg) / "best.jsonl"
    rs_dir = train_recipe(
        sft,
        {
            "model.path": sft_dir,
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
    done("rejection-sampling sft")

    # 9. RLAIF: the SFT model as the labeler instead of the raters, then the same RL stage
    rlaif, rlaif_dir = None, None
    if preset.rlaif:
        from rlhf.demo.rlaif import run_rlaif

        stage("rlaif")
        rlaif = run_rlaif(root, world, sft_dir, root / "data" / "candidates.jsonl", rankings, preset, seed)
        rlaif_dir = run_ppo(root, world, sft_dir, Path(rlaif["reward_model"]), preset, seed, name="ppo-rlaif")
        done("rlaif")

    # 10. reward hacking: raters who like long, confident answers, their reward model, weak-KL PPO
    hacked_dir = None
    if preset.hacking:
        from rlhf.demo.hacking import run_reward_hacking

        stage("reward hacking")
        hacked_dir = run_reward_hacking(root, world, sft_dir, rm_dir, read_candidates(root), preset, seed)
        done("reward hacking")

    # 11. the same learners with gold itself as the labeler: what a perfect reward model or
    # perfect raters would give them (the table's "gold reward" / "gold labels" rows)
    gold_ppo_dir, gold_dpo_dir = None, None
    if preset.gold_rows:
        stage("ppo and dpo on gold")
        gold_ppo_dir = run_ppo(root, world, sft_dir, None, preset, seed, name="ppo-gold")
        labels = gold_rankings(root / "data" / "rankings-gold.jsonl", world, read_candidates(root))
        # one gold ranking per prompt against raters_per_prompt rankings: as many optimizer steps
        gold_dpo_dir = run_dpo(
            root, sft_dir, labels, preset, seed, "dpo-gold", preset.dpo_epochs * preset.raters_per_prompt
        )
        done("ppo and dpo on gold")

    # 12. evaluation on held-out prompts
    stage("evaluation")
    tok = AutoTokenizer.from_pretrained(sft_dir)
    sft_model = AutoModelForCausalLM.from_pretrained(sft_dir).eval()
    base_model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    tasks = world.tasks("eval")
    rl_max_length = preset.max_length + preset.max_new_tokens  # as the RL runs cut the web text
    stages = [
        evaluate_policy(
            name, m, tok, tasks, sft_model, preset.max_new_tokens, preset.kl_samples, seed, web, rl_max_length
        )
        for name, m in (
            ("base", base_model),
            ("sft", sft_model),
            ("ppo", AutoModelForCausalLM.from_pretrained(ppo_dir).eval()),
            *([("ppo-ptx", AutoModelForCausalLM.from_pretrained(ptx_dir).eval())] if ptx_dir else []),
            ("dpo", AutoModelForCausalLM.from_pretrained(dpo_dir).eval()),
            ("rs-sft", AutoModelForCausalLM.from_pretrained(rs_dir).eval()),
            *([("rlaif", AutoModelForCausalLM.from_pretrained(rlaif_dir).eval())] if rlaif_dir else []),
            *([(HACKED, AutoModelForCausalLM.from_pretrained(hacked_dir).eval())] if hacked_dir else []),
            *(
                [(GOLD_PPO, AutoModelForCausalLM.from_pretrained(gold_ppo_dir).eval())]
                if gold_ppo_dir
                else []
            ),
            *(
                [(GOLD_DPO, AutoModelForCausalLM.from_pretrained(gold_dpo_dir).eval())]
                if gold_dpo_dir
                else []
            ),
        )
    ]
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
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
    done("evaluation")

    seconds["total"] = round(time.perf_counter() - t_all, 1)
    results = {
        "stages": stages,
        "reward_model": {"heldout_accuracy_vs_gold": rm_acc, "heldout_accuracy_by_family": rm_by_family},
        "best_of_n_curve": bon_curve,
        "web_text": {"documents": len(web), "file": str(web_text_file(root).relative_to(root))},
        "proxy_vs_gold": {
            name: proxy_vs_gold(root / run / "metrics.jsonl")
            for name, run in [("ppo", "ppo"), *([(HACKED, "ppo-biased")] if hacked_dir else [])]
        },
        **({"rlaif": {k: v for k, v in rlaif.items() if k != "agreement"}} if rlaif else {}),
        "config": {"preset": preset_name, "seed": seed, **asdict(preset)},
        "seconds": seconds,
    }
    report.write(results, root)
    banner("results")
    for s in stages:
        print(f"[{s['name']}] examples:")
        for ex in s["examples"]:
            print(f"    {ex['prompt'].strip()!r} -> {ex['response']!r}  (gold {ex['gold']:+.2f})")
    print()
    print(report.table(results))
    print(f"\n[demo] wrote {root / 'results.json'}, results.md and report.html in {seconds['total']:.0f} s")
    return results
