"""How well a smollm demo's SFT model fits its training distribution, without the held-out split.

Greedy responses (the evaluation's settings) of a model to training-split prompts that SFT never
saw: the preset's rating and RL sets, whose templates and fillers all occur in SFT's prompts in
other combinations. Prints the share of harmful requests declined and of benign look-alikes
answered, per family, and every miss; a model that falls short here underfits its own data, so
held-out prompts (new templates and fillers) cannot do better.

With ``--base DIR`` it also asks both models the 40 general questions (``rlhf.realtask.general``,
none of them a safety prompt) and prints the share of the base model's right answers the model
still answers right ("general kept", as the demo's table computes it), and each answer lost.

    python bench/smollm_sft_fit.py runs/smollm/sft/final --prompts 88 --base runs/smollm/base
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

import torch

from rlhf.demo.smollm_eval import autocast, engine_for, general_answers
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.realtask import general
from rlhf.realtask.gold import answered_benign, declined_harmful
from rlhf.realtask.prompts import chat, stage_sets
from rlhf.rollout.generate import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model directory, e.g. <output_dir>/sft/final")
    ap.add_argument("--prompts", type=int, default=88, help="how many of the rating and RL prompts")
    ap.add_argument(
        "--sets",
        default="rating,rl",
        help="which prompt sets (a PPO model: rating, the prompts it never saw)",
    )
    ap.add_argument("--seed", type=int, default=0, help="the demo run's seed (it cuts the prompt sets)")
    ap.add_argument("--base", default="", help="the base model directory: also measure general answers kept")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = SMOL_PRESETS["smollm"]
    sets = stage_sets(p.stage_sizes, args.seed)
    pool = [t for name in args.sets.split(",") for t in sets[name]]
    random.Random(1).shuffle(pool)
    pool = pool[: args.prompts]
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    with torch.no_grad(), autocast(p.mixed_precision):
        gens = engine_for(model, tok, p.mixed_precision).generate(
            [chat(t) for t in pool], SamplingParams(p.max_new_tokens, temperature=0.0)
        )
    per_family: dict[str, list[bool]] = defaultdict(list)
    for task, g in zip(pool, gens):
        text = g[0].text
        ok = declined_harmful(task, text) if task.harmful else answered_benign(task, text)
        per_family[task.family].append(ok)
        if not ok:
            print(f"miss {task.family}: {task.prompt!r} -> {text[:90]!r}")
    harm = [ok for t, g in zip(pool, gens) for ok in [declined_harmful(t, g[0].text)] if t.harmful]
    good = [ok for t, g in zip(pool, gens) for ok in [answered_benign(t, g[0].text)] if not t.harmful]
    print(f"harmful declined {sum(harm) / len(harm):.2f} of {len(harm)}")
    print(f"benign answered {sum(good) / len(good):.2f} of {len(good)}")
    print({f: f"{sum(v)}/{len(v)}" for f, v in per_family.items()})
    if args.base:
        texts = general_texts(model, tok, p)
        base = AutoModelForCausalLM.from_pretrained(args.base).eval()
        base_texts = general_texts(base, AutoTokenizer.from_pretrained(args.base), p)
        right = [general.right(a, t) for (_, a), t in zip(general.QUESTIONS, texts)]
        base_right = [general.right(a, t) for (_, a), t in zip(general.QUESTIONS, base_texts)]
        for (q, _), t, ok, base_ok in zip(general.QUESTIONS, texts, right, base_right):
            if base_ok and not ok:
                print(f"general lost: {q!r} -> {t!r}")
        print(f"general right {sum(right)} of {len(right)}, base {sum(base_right)}")
        print(f"general kept {general.kept(base_right, right):.2f} of {sum(base_right)}")


def general_texts(model, tok, p) -> list[str]:
    """Each general question's greedy answer, with the demo's settings (its tokens, bf16)."""
    with torch.no_grad(), autocast(p.mixed_precision):
        return general_answers(engine_for(model, tok, p.mixed_precision), p.general_tokens)


if __name__ == "__main__":
    main()
