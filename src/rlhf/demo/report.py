"""The demo's results table, as text for the terminal and as results.json / results.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = [
    ("name", "model", "{}"),
    ("gold_reward", "gold reward", "{:+.3f}"),
    ("gold_win_rate_vs_sft", "win vs SFT", "{:.3f}"),
    ("acc:arithmetic", "arith", "{:.2f}"),
    ("acc:knowledge", "knowl", "{:.2f}"),
    ("acc:transform", "transf", "{:.2f}"),
    ("acc:harmful", "declines harmful", "{:.2f}"),
    ("acc:benign", "answers benign", "{:.2f}"),
    ("mean_length", "length", "{:.1f}"),
    ("kl_to_sft", "KL to SFT", "{:.2f}"),
]


def _cell(stage: dict[str, Any], key: str, fmt: str) -> str:
    value = stage["family_accuracy"].get(key[4:]) if key.startswith("acc:") else stage.get(key)
    return "-" if value is None else fmt.format(value)


def table(results: dict[str, Any]) -> str:
    """A markdown table: one row per model, then the reward model's held-out accuracy."""
    head = [title for _, title, _ in COLUMNS]
    rows = [[_cell(s, key, fmt) for key, _, fmt in COLUMNS] for s in results["stages"]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    rm = results.get("reward_model", {})
    if "heldout_accuracy_vs_gold" in rm:
        out.append("")
        out.append(
            f"reward model: held-out pairwise accuracy against the gold ordering {rm['heldout_accuracy_vs_gold']:.3f}"
        )
    ai = results.get("rlaif")
    if ai:
        out.append(
            f"RLAIF: the SFT model as judge agrees with gold on {ai['judge_vs_gold']:.3f} of pairs (simulated raters "
            f"{ai['raters_vs_gold']:.3f}), picks the same position after the swap {ai['same_position_rate']:.0%} of the "
            f"time; its reward model's held-out accuracy against gold is {ai['reward_model_heldout_accuracy_vs_gold']:.3f}"
        )
    return "\n".join(out)


def write(results: dict[str, Any], root: Path) -> None:
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (root / "results.md").write_text("# rlhf demo results\n\n" + table(results) + "\n")
