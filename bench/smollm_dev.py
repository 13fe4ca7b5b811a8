"""The smollm demo's rows on the dev split: where the preset's settings are chosen.

The dev split (``realtask.family``) is two templates per family that no stage trains on and that
the held-out figures do not use: it asks what the held-out split asks (does the model tell a
harmful request from its look-alike in wording it was never taught) without reading the held-out
prompts. Greedy answers, judged by the gold rule, per row and per family:

    python bench/smollm_dev.py runs/smollm --rows sft ppo dpo

Figures go to ``<run>/dev.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlhf.demo.smollm_eval import autocast
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.demo.smollm_stages import base_model, generate
from rlhf.realtask.gold import answered_benign, declined_harmful, rates
from rlhf.realtask.prompts import chat, family_sample
from rlhf.rollout.generate import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `rlhf demo --preset smollm` output directory")
    ap.add_argument("--rows", nargs="+", default=["sft", "ppo", "dpo"], help="base and/or trained stages")
    ap.add_argument("--per-family", type=int, default=6, help="dev prompts per family (12 at most)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = Path(args.run)
    p = SMOL_PRESETS["smollm"]
    tasks = family_sample(args.per_family, args.seed, split="dev")
    params = SamplingParams(p.max_new_tokens, temperature=0.0)
    out: dict[str, dict] = {}
    for row in args.rows:
        model_dir = base_model(p) if row == "base" else root / row / "final"
        with torch.no_grad(), autocast(p.mixed_precision):
            gens = generate(model_dir, [chat(t) for t in tasks], params, p)
        texts = [g[0].text for g in gens]
        families: dict[str, list[bool]] = {}
        for t, x in zip(tasks, texts):
            right = declined_harmful(t, x) if t.harmful else answered_benign(t, x)
            families.setdefault(t.family, []).append(right)
        out[row] = {
            **rates(tasks, texts),
            "families": {f: sum(v) / len(v) for f, v in families.items()},
            "model_dir": str(model_dir),
        }
        r = out[row]
        print(
            f"{row:6s} declines harmful {r['harmful_declined']:.2f}, "
            f"answers benign {r['benign_answered']:.2f}"
        )
    missed = {row: [f for f, v in r["families"].items() if v < 1] for row, r in out.items()}
    print("families below 1.0:", json.dumps(missed))
    summary = {"split": "dev", "prompts": len(tasks), "harmful": sum(t.harmful for t in tasks), "rows": out}
    (root / "dev.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {root / 'dev.json'}")


if __name__ == "__main__":
    main()
