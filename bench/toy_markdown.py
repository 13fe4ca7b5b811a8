"""The README's toy-model tables, printed from the results files the toy benchmarks wrote
(bench/results/sft.json, reward.json, dpo.json, ppo.json): every figure in them, ours and TRL's,
comes from one run of a benchmark.

    .venv/bin/python bench/toy_markdown.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import RESULTS

UNITS = {"sft": "samples_per_s", "reward": "pairs_per_s", "dpo": "pairs_per_s", "ppo": "rollouts_per_s"}


def cells(row: dict[str, Any], per_s: str) -> list[str]:
    """ours, share of matmul, TRL, the two ratios and the load columns of one row."""
    mfu = row.get("mfu", row.get("of_matmul"))
    ours = [f"{row[per_s]:.3g}", f"{mfu:.0%}"]
    if "vs_peer" not in row:
        return [*ours, "-", "-", "-", f"{row['other_load']:.1f} / -"]
    return [
        *ours,
        f"{row['peer_per_s']:.3g}",
        f"{row['vs_peer']:.2f}x",
        f"{row['vs_peer_cpu']:.2f}x",
        f"{row['other_load']:.1f} / {row['peer_load']:.1f}",
    ]


HEADER = "| ours | of matmul | TRL | ours / TRL (wall) | ours / TRL (CPU s a step) | other load ours / TRL |"


def supervised(sft: dict, reward: dict) -> list[str]:
    lines = [
        "| stage | size | precision " + HEADER,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sft["rows"]:
        lines.append(
            f"| SFT samples/s | {r['size']} | {r['precision']} | "
            + " | ".join(cells(r, "samples_per_s"))
            + " |"
        )
    for r in reward["rows"]:
        stage = "reward pairs/s" if r["K"] == 2 else f"reward comparisons/s, K={r['K']} rankings"
        lines.append(
            f"| {stage} | {r['size']} | {r['precision']} | " + " | ".join(cells(r, "pairs_per_s")) + " |"
        )
    return lines


def rl(dpo: dict, ppo: dict) -> list[str]:
    lines = ["| stage | precision " + HEADER, "|---|---|---|---|---|---|---|---|"]
    for r in dpo["rows"]:
        label = f"DPO pairs/s, {r['size']}, attn {r['attn']}" + (
            ", two rows a pair" if r["layout"] != "shared" else ""
        )
        lines.append(f"| {label} | {r['precision']} | " + " | ".join(cells(r, "pairs_per_s")) + " |")
    for r in ppo["rows"]:
        if r["algo"] == "ppo":
            label = "PPO rollouts/s, " + (
                "critic from the reward model"
                if r["critic"] == "reward"
                else "value head on the policy (`critic.init=shared`)"
            )
        else:
            label = "GRPO completions/s, 4 prompts x 4" + (
                "" if r["reference"] else ", no reference (`algo.reference=false`)"
            )
        lines.append(f"| {label} | {r['precision']} | " + " | ".join(cells(r, "rollouts_per_s")) + " |")
    return lines


def footer(payloads: list[dict]) -> str:
    dates = sorted(r["date"] for p in payloads for r in p["rows"])
    m = payloads[0]["machine"]
    fp32 = max(
        v for p in payloads for k, v in p["matmul_flops_per_s"].items() if k.startswith("fp32") and "^3" in k
    )
    bf16 = max(
        v for p in payloads for k, v in p["matmul_flops_per_s"].items() if k.startswith("bf16") and "^3" in k
    )
    return (
        f"Measured {dates[0]} to {dates[-1]} on {m['cpu']} ({m['cores']} cores, {m['torch_threads']} torch "
        f"thread a side); best matmul rate measured in these runs: {fp32 / 1e9:.0f} GFLOP/s fp32, "
        f"{bf16 / 1e9:.0f} GFLOP/s bf16."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    args = ap.parse_args()
    files = {name: json.loads((args.results / f"{name}.json").read_text()) for name in UNITS}
    print("\n".join(supervised(files["sft"], files["reward"])))
    print()
    print(footer([files["sft"], files["reward"]]))
    print()
    print("\n".join(rl(files["dpo"], files["ppo"])))
    print()
    print(footer([files["dpo"], files["ppo"]]))


if __name__ == "__main__":
    main()
