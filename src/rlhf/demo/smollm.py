"""`rlhf demo --preset smollm`: make SmolLM2-135M-Instruct decline harmful requests while it keeps
answering their benign look-alikes (rlhf.realtask), with the seed pipeline on a real chat model.

    1. the base model: the packaged SmolLM2-135M-Instruct GGUF file, converted once (cached)
    2. demonstrations: a plain refusal for each harmful SFT prompt, the base model's own answer
       (trimmed to whole sentences) for each benign one; SFT with LoRA
    3. K samples per rating prompt from SFT, ranked by simulated raters whose truth is the gold rule
    4. a reward model with the SFT model as its backbone (LoRA)
    5. PPO from SFT against the reward model with a per-token KL penalty to SFT
    6. DPO on the same rankings; best-of-n (SFT samples, the reward model's pick) at inference
    7. every row on the held-out prompts (templates and fillers never trained on; one draw whatever
       the seed, ``heldout_tasks``): harmful declined, benign answered, gold reward, KL to SFT and
       to the base, general questions kept, held-out text NLL

Every stage is an ordinary recipe writing an ordinary run directory; ``<output_dir>/<stage>/final``
is a Hugging Face model. The results have the toy demo's shape (``results.json``, ``results.md``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rlhf.demo import smollm_stages as st
from rlhf.demo.smollm_preset import SMOL_PRESETS, SmolPreset
from rlhf.demo.smollm_report import write as write_report
from rlhf.demo.smollm_rows import compare_rows, evaluation_rows
from rlhf.demo.stages import write_jsonl
from rlhf.realtask import general
from rlhf.realtask.family import Task
from rlhf.realtask.prompts import chat, family_sample, stage_sets


def run_smollm_demo(output_dir: str, preset: str | SmolPreset = "smollm", seed: int = 0) -> dict[str, Any]:
    """The whole pipeline into ``output_dir``; returns (and writes) the results."""
    torch.manual_seed(seed)
    p = preset if isinstance(preset, SmolPreset) else SMOL_PRESETS[preset]
    t_all = time.perf_counter()
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    run = st.SmolRun(root, p, seed, stage_sets(p.stage_sizes, seed))
    base_dir = run.stage("base model (the GGUF file converted once, then cached)", lambda: st.base_model(p))
    heldout = heldout_tasks(p)
    write_jsonl(run.data / "heldout_prompts.jsonl", [{"prompt": chat(t)} for t in heldout])
    dirs = train_stages(run, base_dir)
    rows = run.stage("evaluation", lambda: evaluation_rows(root, p, seed, heldout, dirs, dirs.pop("reward")))
    base_right = compare_rows(rows)
    run.seconds["total"] = round(time.perf_counter() - t_all, 1)
    results = {
        "stages": rows,
        "heldout": heldout_summary(heldout),
        "general": {"questions": len(general.QUESTIONS), "base_right": sum(base_right)},
        "web_text": {"documents": len(general.HELDOUT_TEXT), "file": "rlhf.realtask.general.HELDOUT_TEXT"},
        "config": {"preset": preset if isinstance(preset, str) else "custom", "seed": seed, **asdict(p)},
        "seconds": run.seconds,
    }
    write_report(results, root)
    return results


def heldout_tasks(p: SmolPreset) -> list[Task]:
    """The held-out prompts every row is judged on: ``p.heldout_per_family`` of each family's
    held-out split, one draw whatever the run's seed, so runs of different seeds (other stage sets,
    other training draws) are compared on the same prompts."""
    return family_sample(p.heldout_per_family, seed=0)


def train_stages(run: st.SmolRun, base_dir: Path) -> dict[str, Path]:
    """Every trained stage in order, each reused when its output is already there; returns the
    rows' model directories ({"base", "sft", "ppo", "dpo"}) and the reward model's ("reward")."""
    root, data = run.root, run.data
    demos = run.stage(
        "demonstrations", lambda: st.demonstrations(run, base_dir), data / "demonstrations.jsonl"
    )
    sft_dir = run.stage("sft", lambda: st.train_sft(run, base_dir, demos), root / "sft" / "final")
    rankings = run.stage(
        "sample and rank", lambda: st.sample_and_rank(run, sft_dir, base_dir), data / "rankings.jsonl"
    )
    rm_dir = run.stage(
        "reward model", lambda: st.train_reward(run, sft_dir, rankings), root / "reward" / "final"
    )
    ppo_dir = run.stage("ppo", lambda: st.train_ppo(run, sft_dir, rm_dir), root / "ppo" / "final")
    dpo_dir = run.stage("dpo", lambda: st.train_dpo(run, sft_dir, rankings), root / "dpo" / "final")
    return {"base": base_dir, "sft": sft_dir, "ppo": ppo_dir, "dpo": dpo_dir, "reward": rm_dir}


def heldout_summary(heldout: list[Task]) -> dict[str, Any]:
    return {
        "prompts": len(heldout),
        "harmful": sum(t.harmful for t in heldout),
        "benign": sum(not t.harmful for t in heldout),
        "file": "data/heldout_prompts.jsonl",
    }
