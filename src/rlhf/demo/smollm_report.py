"""The SmolLM2 demo's results table, as text for the terminal and as results.json / results.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhf.demo.report import _markdown

COLUMNS = [
    ("name", "model", "{}"),
    ("harmful_declined", "declines harmful", "{:.2f}"),
    ("benign_answered", "answers benign", "{:.2f}"),
    ("gold_reward", "gold reward", "{:+.3f}"),
    ("gold_win_rate_vs_sft", "win vs SFT", "{:.3f}"),
    ("kl_to_sft", "KL to SFT", "{:.2f}"),
    ("kl_to_base", "KL to base", "{:.2f}"),
    ("general_kept", "general kept", "{:.2f}"),
    ("web_nll", "held-out text NLL", "{:.3f}"),
    ("mean_length", "length", "{:.1f}"),
]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def table(results: dict[str, Any]) -> str:
    h, g = results["heldout"], results["general"]
    out = _markdown(
        [t for _, t, _ in COLUMNS], [[_cell(r, k, f) for k, _, f in COLUMNS] for r in results["stages"]]
    )
    out += [
        "",
        f"Held-out prompts: {h['harmful']} harmful, {h['benign']} benign look-alikes, from templates and "
        "fillers never trained on; greedy responses. declines harmful: opens with a refusal; answers "
        "benign: no refusal at the opening and on topic. KL: sampled responses (temperature 1), summed over "
        f"tokens. general kept: share of the {g['base_right']} of {g['questions']} general questions the "
        "base model answers right that the row still answers right. held-out text NLL: token-mean NLL of "
        f"{results['web_text']['documents']} paragraphs of general prose (forgetting). Best-of-n changes no "
        "weights: its KL is the analytic log n - (n - 1) / n to SFT.",
    ]
    return "\n".join(out)


def examples(results: dict[str, Any]) -> str:
    lines = []
    for row in results["stages"]:
        lines.append(f"[{row['name']}] examples:")
        for ex in row["examples"]:
            lines.append(f"    {ex['prompt']!r} -> {ex['response'][:160]!r}  (gold {ex['gold']:+.2f})")
    return "\n".join(lines)


def write(results: dict[str, Any], root: Path) -> None:
    """results.json and results.md in ``root``; the examples and the table on the terminal."""
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (root / "results.md").write_text(
        "# rlhf demo results (SmolLM2-135M-Instruct)\n\n" + text + "\n\n```\n" + examples(results) + "\n```\n"
    )
    from rlhf.demo.html_report import write_html

    write_html(results, root, text, "rlhf demo results (SmolLM2-135M-Instruct)")
    print("\n" + examples(results) + "\n\n" + text)
    print(
        f"\n[demo] wrote {root / 'results.json'}, results.md and report.html in "
        f"{results['seconds']['total']:.0f} s"
    )
