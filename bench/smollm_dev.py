"""The smollm demo's rows on the dev split: where the preset's settings are chosen.

The dev split (``realtask.family``) is two templates per family that no stage trains on and that
the held-out figures do not use: it asks what the held-out split asks (does the model tell a
harmful request from its look-alike in wording it was never taught) without reading the held-out
prompts. Greedy answers, judged by the gold rule, per row and per family; and what a row costs,
as the report's "general kept" but on ``general.DEV_QUESTIONS`` (the share of those the base
model answers right that the row still answers right):

    python bench/smollm_dev.py runs/smollm --rows sft ppo dpo

``--reward`` also asks whether the run's reward model reads the request: on each dev prompt it
scores the plain refusal against the base model's greedy answer (look-alikes: only where that
answer answers them). The share it orders right, per kind: a model that scores a refusal high
(or low) whatever was asked gets one kind right and the other wrong.

Figures go to ``<run>/dev.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlhf.demo.smollm_eval import autocast, engine_for, general_right
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.demo.smollm_stages import base_model, generate
from rlhf.realtask import general
from rlhf.realtask.demonstrations import REFUSAL
from rlhf.realtask.gold import answered_benign, declined_harmful, rates
from rlhf.realtask.prompts import chat, family_sample
from rlhf.rollout.generate import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `rlhf demo --preset smollm` output directory")
    ap.add_argument("--rows", nargs="+", default=["sft", "ppo", "dpo"], help="base and/or trained stages")
    ap.add_argument("--per-family", type=int, default=6, help="dev prompts per family (12 at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reward", action="store_true", help="also the reward model's refusal-or-answer decisions"
    )
    args = ap.parse_args()
    root = Path(args.run)
    p = SMOL_PRESETS["smollm"]
    tasks = family_sample(args.per_family, args.seed, split="dev")
    params = SamplingParams(p.max_new_tokens, temperature=0.0)
    out: dict[str, dict] = {}
    with torch.no_grad(), autocast(p.mixed_precision):
        base_right = dev_general_right(base_model(p), p)
    for row in args.rows:
        model_dir = base_model(p) if row == "base" else root / row / "final"
        with torch.no_grad(), autocast(p.mixed_precision):
            gens = generate(model_dir, [chat(t) for t in tasks], params, p)
            row_general = dev_general_right(model_dir, p)
        texts = [g[0].text for g in gens]
        families: dict[str, list[bool]] = {}
        for t, x in zip(tasks, texts):
            right = declined_harmful(t, x) if t.harmful else answered_benign(t, x)
            families.setdefault(t.family, []).append(right)
        out[row] = {
            **rates(tasks, texts),
            "families": {f: sum(v) / len(v) for f, v in families.items()},
            "general_kept": general.kept(base_right, row_general),
            "model_dir": str(model_dir),
        }
        r = out[row]
        print(
            f"{row:6s} declines harmful {r['harmful_declined']:.2f}, "
            f"answers benign {r['benign_answered']:.2f}, general kept {r['general_kept']:.2f} "
            f"(of {sum(base_right)})"
        )
    missed = {row: [f for f, v in r["families"].items() if v < 1] for row, r in out.items()}
    print("families below 1.0:", json.dumps(missed))
    summary = {
        "split": "dev",
        "prompts": len(tasks),
        "harmful": sum(t.harmful for t in tasks),
        "general_base_right": sum(base_right),
        "rows": out,
    }
    if args.reward:
        summary["reward_decisions"] = reward_decisions(root / "reward" / "final", tasks, p)
        print(
            "reward model orders the refusal and the answer right:", json.dumps(summary["reward_decisions"])
        )
    (root / "dev.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {root / 'dev.json'}")


def reward_decisions(rm_dir: Path, tasks: list, p) -> dict[str, dict[str, float]]:
    """Per kind, the share of dev prompts on which the reward model scores the plain refusal above
    the base model's greedy answer (harmful) or below it (look-alikes the answer answers)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with torch.no_grad(), autocast(p.mixed_precision):
        gens = generate(
            base_model(p), [chat(t) for t in tasks], SamplingParams(p.max_new_tokens, temperature=0.0), p
        )
    tok = AutoTokenizer.from_pretrained(rm_dir)
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    right: dict[str, list[bool]] = {"harmful": [], "benign": []}
    for t, g in zip(tasks, gens):
        answer = g[0].text
        if not t.harmful and not answered_benign(t, answer):
            continue
        texts = [
            tok.apply_chat_template(chat(t) + [{"role": "assistant", "content": x}], tokenize=False)
            for x in (REFUSAL, answer)
        ]
        with torch.no_grad(), autocast(p.mixed_precision):
            refusal, other = rm(**tok(texts, return_tensors="pt", padding=True)).logits[:, 0].float().tolist()
        right["harmful" if t.harmful else "benign"].append(refusal > other if t.harmful else other > refusal)
    return {k: {"right": sum(v) / len(v), "prompts": len(v)} for k, v in right.items() if v}


def dev_general_right(model_dir: Path, p) -> list[bool]:
    """Whether the model's greedy answer to each dev general question names its answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    engine = engine_for(model, tok, p.mixed_precision)
    return general_right(engine, p.general_tokens, general.DEV_QUESTIONS)


if __name__ == "__main__":
    main()
