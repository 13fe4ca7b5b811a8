"""How far SFT alone gets on the smollm demo's task with more demonstrations.

The smollm preset's demonstrations and SFT stage with ``--n-sft`` prompts and ``--sft-steps``
steps (everything else as the preset), then the base and SFT rows of its evaluation on the same
held-out prompts; prints both rows and writes them under ``<output>/eval/``.

    python bench/smollm_sft_data.py --output runs/smollm-sft240 --n-sft 240 --sft-steps 60
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rlhf.demo.smollm import heldout_tasks
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.demo.smollm_rows import evaluation_rows
from rlhf.demo.smollm_stages import SmolRun, base_model, demonstrations, train_sft
from rlhf.realtask import general
from rlhf.realtask.prompts import stage_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", required=True)
    ap.add_argument("--n-sft", type=int, default=240)
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = replace(SMOL_PRESETS["smollm"], n_sft=args.n_sft, sft_steps=args.sft_steps)
    seed, root, base = args.seed, Path(args.output), base_model(p)
    run = SmolRun(root, p, seed, stage_sets(p.stage_sizes, seed))
    sft_dir = train_sft(run, base, demonstrations(run, base))
    heldout = heldout_tasks(p)
    dirs = {"base": base, "sft": sft_dir}
    rows = evaluation_rows(root, p, seed, heldout, dirs, sft_dir, only=("base", "sft"))
    base_right = rows[0]["_general_right"]
    for row in rows:
        shown = {k: v for k, v in row.items() if not k.startswith("_") and k != "examples"}
        print(row["name"], shown, "general kept", general.kept(base_right, row["_general_right"]), flush=True)


if __name__ == "__main__":
    main()
