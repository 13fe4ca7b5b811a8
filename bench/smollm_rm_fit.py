"""How well the smollm demo's reward model generalises: pairwise accuracy on unseen rankings.

Samples K responses per prompt from an SFT model (the demo's sampling stage: the preset's rating
prompts, or with ``--with-rl`` the RL prompts too), has the simulated raters rank them
(``--raters`` per prompt), holds out the rankings of ``--heldout`` prompts, trains the demo's
reward model (LoRA on the SFT backbone) on the rest, and prints its pairwise accuracy on the
held-out prompts against the raters' order and against the gold rule's order (comparisons whose
gold scores differ). The held-out prompts get one rater each, as the demo's rankings do.

    python bench/smollm_rm_fit.py runs/smollm/sft/final --out /tmp/rmfit --epochs 3 --lr 1e-3

The candidates are cached in ``--out`` (candidates.jsonl), so a second setting on the same SFT
model and prompts skips the sampling. Figures go to ``<out>/fit.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from rlhf.config import load_config
from rlhf.data.collators import collate_groups
from rlhf.demo.smollm_preset import SMOL_PRESETS, SmolPreset
from rlhf.demo.smollm_stages import SmolRun, generate, rank
from rlhf.demo.stages import train_recipe, write_jsonl
from rlhf.models.loading import load_scalar_model, load_tokenizer
from rlhf.realtask.family import Task
from rlhf.realtask.gold import gold_score
from rlhf.realtask.prompts import chat, stage_sets
from rlhf.recipes import reward
from rlhf.rollout.generate import SamplingParams


def candidates(sft: str, tasks: list[Task], p: SmolPreset, seed: int, out: Path) -> list[list[str]]:
    """K samples per task from ``sft`` (the demo's sampling settings), cached in ``out``."""
    path = out / "candidates.jsonl"
    key = {"sft": str(Path(sft).resolve()), "k": p.k, "prompts": [t.prompt for t in tasks], "seed": seed}
    if path.is_file():
        cached = [json.loads(line) for line in path.open()]
        if cached[0] == key:
            return [r["responses"] for r in cached[1:]]
    params = SamplingParams(p.max_new_tokens, n=p.k, seed=seed)
    gens = generate(Path(sft), [chat(t) for t in tasks], params, p)
    cands = [[g.text for g in gs] for gs in gens]
    write_jsonl(path, [key] + [{"prompt": t.prompt, "responses": c} for t, c in zip(tasks, cands)])
    return cands


def gold_rankings(tasks: list[Task], cands: list[list[str]]) -> list[dict]:
    """The gold rule's own order of each task's responses (equal gold scores: a tie, skipped)."""
    records = []
    for t, rs in zip(tasks, cands):
        scores = [gold_score(t, r) for r in rs]
        ranks = [1 + sum(s > x for s in scores) for x in scores]  # equal scores: equal ranks
        records.append({"prompt": chat(t), "responses": rs, "ranks": ranks})
    return records


@torch.no_grad()
def accuracy(rm: Path, path: Path, max_length: int, batch: int) -> tuple[float, int]:
    """Pairwise accuracy of the reward model in ``rm`` on the ranking file ``path``."""
    cfg = load_config(reward.Config, None, [f"model.path={rm}", f"data.max_length={max_length}"])
    tok = load_tokenizer(str(rm))
    model = load_scalar_model(cfg.model, tok, trained=True).eval()
    groups, _, _ = reward.load_groups(str(path), str(path), tok, cfg)
    right = pairs = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(groups), batch):
            b = collate_groups(groups[i : i + batch], tok.pad_token_id)
            r = reward.score(model, b).float()
            right += int((r[b["better"]] > r[b["worse"]]).sum())
            pairs += b["better"].numel()
    return right / pairs, pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sft", help="the SFT model directory (sampler and reward-model backbone)")
    ap.add_argument("--out", required=True, help="scratch directory (candidates, reward model, fit.json)")
    ap.add_argument("--with-rl", action="store_true", help="rank the RL prompts' samples too")
    ap.add_argument("--raters", type=int, default=1, help="raters per training prompt")
    ap.add_argument("--heldout", type=int, default=24, help="prompts whose rankings are held out")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0, help="the demo run's seed (it cuts the prompt sets)")
    args = ap.parse_args()
    p = SMOL_PRESETS["smollm"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = stage_sets(p.stage_sizes, args.seed)
    tasks = sets["rating"] + (sets["rl"] if args.with_rl else [])
    t0 = time.process_time()
    cands = candidates(args.sft, tasks, p, args.seed, out)
    sample_cpu = time.process_time() - t0
    order = list(range(len(tasks)))
    random.Random(f"{args.seed}:rm-fit").shuffle(order)
    held, train = sorted(order[: args.heldout]), sorted(order[args.heldout :])
    train_recs = rank([tasks[i] for i in train], [cands[i] for i in train], args.raters, args.seed)
    held_recs = rank([tasks[i] for i in held], [cands[i] for i in held], 1, args.seed + 1)
    files = {
        "train": write_jsonl(out / "rank_train.jsonl", train_recs),
        "heldout": write_jsonl(out / "rank_heldout.jsonl", held_recs),
        "heldout_gold": write_jsonl(
            out / "rank_heldout_gold.jsonl", gold_rankings([tasks[i] for i in held], [cands[i] for i in held])
        ),
    }
    run = SmolRun(out, p, args.seed, sets)
    t0 = time.process_time()
    rm = train_recipe(
        reward,
        {
            **run.common(),
            "model.path": args.sft,
            "data.train": files["train"],
            "train.output_dir": out / "reward",
            "train.epochs": args.epochs,
            "train.batch_size": p.batch_size,
            "train.lr": args.lr,
            "train.schedule": "constant",
            "train.warmup_steps": 3,
        },
    )
    train_cpu = time.process_time() - t0
    fit = {
        "sft": args.sft,
        "prompts": len(tasks),
        "train_prompts": len(train),
        "train_rankings": len(train_recs),
        "heldout_prompts": len(held),
        "raters": args.raters,
        "epochs": args.epochs,
        "lr": args.lr,
        "sample_cpu_s": round(sample_cpu),
        "train_cpu_s": round(train_cpu),
    }
    for name in ("heldout", "heldout_gold", "train"):
        acc, n = accuracy(rm, files[name], p.max_length, p.batch_size)
        fit[f"{name}_acc"], fit[f"{name}_pairs"] = round(acc, 3), n
    print(json.dumps(fit, indent=1))
    (out / "fit.json").write_text(json.dumps(fit, indent=1) + "\n")


if __name__ == "__main__":
    main()
