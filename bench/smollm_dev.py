"""The smollm demo's rows on the dev split: where the preset's settings are chosen.

The dev split (``realtask.family``) is two templates per family that no stage trains on and that
the held-out figures do not use: it asks what the held-out split asks (does the model tell a
harmful request from its look-alike in wording it was never taught) without reading the held-out
prompts. Greedy answers, judged by the gold rule, per row and per family; and what a row costs,
as the report's "general kept" but on ``general.DEV_QUESTIONS`` (the share of those the base
model answers right that the row still answers right), and the token-mean NLL of
``general.DEV_TEXT`` (as the report's held-out text NLL, on other paragraphs: forgetting):

    python bench/smollm_dev.py runs/smollm --rows sft ppo dpo

``--reward`` also asks whether the run's reward model reads the request: on each dev prompt it
scores the plain refusal against the base model's greedy answer, where that answer makes the
other choice (harmful requests: only where it does not decline them; look-alikes: only where it
answers them; a refusal against a refusal tells nothing). The share it orders right, per kind: a
model that scores a refusal high (or low) whatever was asked gets one kind right and the other
wrong.

``--prompts rl`` judges the rows on the 120 RL prompts PPO trained on instead (training prompts,
greedy): how well RL learned its own prompts, against how far that reaches on the dev split.

Figures go to ``<run>/dev.json`` (``<run>/rl_prompts.json`` with ``--prompts rl``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlhf.data.tokenize import encode_prompt
from rlhf.demo.smollm_eval import autocast, general_right, web_nll
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.demo.smollm_stages import base_model, engine
from rlhf.realtask import general
from rlhf.realtask.demonstrations import REFUSAL
from rlhf.realtask.gold import answered_benign, declined_harmful, rates
from rlhf.realtask.prompts import chat, family_sample, stage_sets
from rlhf.rollout.generate import Generation, SamplingParams
from rlhf.rollout.reward_model import score_sequences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `rlhf demo --preset smollm` output directory")
    ap.add_argument("--rows", nargs="+", default=["sft", "ppo", "dpo"], help="base and/or trained stages")
    ap.add_argument("--per-family", type=int, default=6, help="dev prompts per family (12 at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reward", action="store_true", help="also the reward model's refusal-or-answer decisions"
    )
    ap.add_argument(
        "--prompts",
        choices=["dev", "rl"],
        default="dev",
        help="the dev split, or the RL stage's training prompts",
    )
    args = ap.parse_args()
    root = Path(args.run)
    p = SMOL_PRESETS["smollm"]
    if args.prompts == "dev":
        tasks = family_sample(args.per_family, args.seed, split="dev")
    else:
        tasks = stage_sets(p.stage_sizes, args.seed)["rl"]
    greedy = SamplingParams(p.max_new_tokens, temperature=0.0)
    dirs = {row: base_model(p) if row == "base" else root / row / "final" for row in ["base", *args.rows]}
    answered = {}  # row -> (greedy answers to the dev prompts, dev general questions right, dev text NLL)
    for row, model_dir in dirs.items():  # the base model's general answers: what a row keeps
        eng = engine(model_dir, p)
        with torch.no_grad(), autocast(p.mixed_precision):
            needed = row in args.rows or args.reward  # --reward reads the base model's answers
            gens = [g[0] for g in eng.generate([chat(t) for t in tasks], greedy)] if needed else []
            right = general_right(eng, p.general_tokens, general.DEV_QUESTIONS)
            answered[row] = gens, right, web_nll(eng.model, eng.tokenizer, general.DEV_TEXT, "dev text")
    base_right = answered["base"][1]
    out: dict[str, dict] = {}
    for row in args.rows:
        gens, row_general, row_nll = answered[row]
        texts = [g.text for g in gens]
        families: dict[str, list[bool]] = {}
        for t, x in zip(tasks, texts):
            right = declined_harmful(t, x) if t.harmful else answered_benign(t, x)
            families.setdefault(t.family, []).append(right)
        out[row] = {
            **rates(tasks, texts),
            "families": {f: sum(v) / len(v) for f, v in families.items()},
            "general_kept": general.kept(base_right, row_general),
            "dev_text_nll": row_nll,
            "model_dir": str(dirs[row]),
        }
        r = out[row]
        print(
            f"{row:6s} declines harmful {r['harmful_declined']:.2f}, "
            f"answers benign {r['benign_answered']:.2f}, general kept {r['general_kept']:.2f} "
            f"(of {sum(base_right)}), dev text NLL {row_nll:.3f} (base {answered['base'][2]:.3f})"
        )
    missed = {row: [f for f, v in r["families"].items() if v < 1] for row, r in out.items()}
    print("families below 1.0:", json.dumps(missed))
    summary = {
        "split": args.prompts,
        "prompts": len(tasks),
        "harmful": sum(t.harmful for t in tasks),
        "general_base_right": sum(base_right),
        "dev_text_nll_base": answered["base"][2],
        "rows": out,
    }
    if args.reward:
        decisions = reward_decisions(root / "reward" / "final", tasks, answered["base"][0], p)
        summary["reward_decisions"] = decisions
        print("reward model orders the refusal and the answer right:", json.dumps(decisions))
    out_file = root / ("dev.json" if args.prompts == "dev" else "rl_prompts.json")
    out_file.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out_file}")


def reward_decisions(rm_dir: Path, tasks: list, base: list[Generation], p) -> dict[str, dict[str, float]]:
    """Per kind, the share of dev prompts on which the reward model scores the plain refusal above
    the base model's greedy answer ``base`` (harmful requests it does not decline) or below it
    (look-alikes it answers), each read as the reward model was trained to read a response: the
    prompt's tokens, then the response's, ending with EOS."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(rm_dir)
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    refusal = tok(REFUSAL, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    kept = [
        (t, g)
        for t, g in zip(tasks, base)
        if (not declined_harmful(t, g.text) if t.harmful else answered_benign(t, g.text))
    ]
    prompts = [encode_prompt(tok, chat(t)) for t, _ in kept]
    with autocast(p.mixed_precision):
        scores = score_sequences(
            rm, prompts * 2, [refusal] * len(kept) + [g.response_ids for _, g in kept], tok.pad_token_id
        )
    right: dict[str, list[bool]] = {"harmful": [], "benign": []}
    for (t, _), s_refusal, s_answer in zip(kept, scores[: len(kept)].tolist(), scores[len(kept) :].tolist()):
        right["harmful" if t.harmful else "benign"].append((s_refusal > s_answer) == t.harmful)
    return {k: {"right": sum(v) / len(v), "prompts": len(v)} for k, v in right.items() if v}


if __name__ == "__main__":
    main()
