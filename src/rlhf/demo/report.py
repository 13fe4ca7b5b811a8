"""The demo's results table, as text for the terminal and as results.json / results.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhf.demo.hacking import HACKED

COLUMNS = [
    ("name", "model", "{}"),
    ("gold_reward", "gold reward", "{:+.3f}"),
    ("gold_win_rate_vs_sft", "win vs SFT", "{:.3f}"),
    ("gold_win_interval", "95% interval", "{0[0]:.2f}-{0[1]:.2f}"),
    ("acc:arithmetic", "arith", "{:.2f}"),
    ("acc:knowledge", "knowl", "{:.2f}"),
    ("acc:transform", "transf", "{:.2f}"),
    ("acc:harmful", "declines harmful", "{:.2f}"),
    ("acc:benign", "answers benign", "{:.2f}"),
    ("mean_length", "length", "{:.1f}"),
    ("kl_to_sft", "KL to SFT", "{:.2f}"),
    ("web_nll", "web NLL", "{:.3f}"),
]


def _cell(stage: dict[str, Any], key: str, fmt: str) -> str:
    value = stage["family_accuracy"].get(key[4:]) if key.startswith("acc:") else stage.get(key)
    return "-" if value is None else fmt.format(value)


def _markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def table(results: dict[str, Any]) -> str:
    """A markdown table: one row per model, then the reward model's held-out accuracy, then proxy
    against gold over the RL runs."""
    head = [title for _, title, _ in COLUMNS]
    out = _markdown(head, [[_cell(s, key, fmt) for key, _, fmt in COLUMNS] for s in results["stages"]])
    out += [
        "",
        "win vs SFT: share of held-out prompts where the gold score beats SFT's, ties counting half; 95% "
        "interval over prompts (normal approximation). Most prompts are ties, so small differences are not "
        "evidence.",
    ]
    if "web_text" in results:
        out += [
            "",
            f"web NLL: token-mean NLL on {results['web_text']['documents']} held-out web-text documents, the "
            "pretraining distribution (forgetting: a rise above SFT's figure is what a stage cost; '-' "
            "where no weights changed)",
        ]
    rm = results.get("reward_model", {})
    if "heldout_accuracy_vs_gold" in rm:
        out.append("")
        out.append(
            "reward model: held-out pairwise accuracy against the gold ordering "
            f"{rm['heldout_accuracy_vs_gold']:.3f}"
        )
    ai = results.get("rlaif")
    if ai:
        out.append(
            f"RLAIF: the SFT model as judge agrees with gold on {ai['judge_vs_gold']:.3f} of pairs "
            f"(simulated raters {ai['raters_vs_gold']:.3f}), picks the same position after the swap "
            f"{ai['same_position_rate']:.0%} of the time; its reward model's held-out accuracy against gold "
            f"is {ai['reward_model_heldout_accuracy_vs_gold']:.3f}"
        )
    out += best_of_n_curve(results.get("best_of_n_curve") or [])
    out += proxy_vs_gold(results.get("proxy_vs_gold") or {})
    return "\n".join(out)


CURVE_COLUMNS = [
    ("n", "n", "{}"),
    ("kl", "KL", "{:.2f}"),
    ("gold", "gold reward", "{:+.3f}"),
    ("win_vs_sft", "win vs SFT", "{:.3f}"),
    ("gold_pick_win_vs_sft", "gold's pick: win vs SFT", "{:.3f}"),
]


def best_of_n_curve(curve: list[dict[str, Any]]) -> list[str]:
    """Best-of-k over k from the best-of-n rows' samples: the reward model's pick against gold's."""
    if not curve:
        return []
    out = [
        "",
        "Best-of-n over n, from the same samples (each n averaged over every subset of that size): KL to "
        "SFT, the gold reward and win rate of the reward model's pick, and the win rate of the pick gold "
        "itself would make. The gap between the two win rates is what the reward model misses; the last "
        "column is the most any reward model could get from these samples.",
        "",
    ]
    return out + _markdown(
        [t for _, t, _ in CURVE_COLUMNS], [[f.format(row[k]) for k, _, f in CURVE_COLUMNS] for row in curve]
    )


WINDOW_COLUMNS = [
    ("kl", "KL", "{:.2f}"),
    ("proxy", "proxy", "{:+.3f}"),
    ("gold", "gold", "{:+.3f}"),
    ("length", "length", "{:.1f}"),
    ("repeated", "repeated", "{:.3f}"),
    ("heldout", "fair RM", "{:+.3f}"),
]


def proxy_vs_gold(curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The RL runs' steps in windows: KL, proxy score and gold reward of the same samples; and, for
    the run against the biased raters' reward model, how each moved from the first window to the last."""
    if not curves:
        return []
    out = [
        "",
        "Proxy vs gold during RL, in windows of steps: KL to SFT per response, the reward model's score the "
        "policy is trained on (normalised), the gold reward of the same samples, tokens per response, share "
        "of repeated word bigrams in a response, and where a run had one, the score a second reward model "
        "that only watched gave the same samples (rewards.heldout_model: the demo's reward model from the "
        "fair raters).",
        "",
    ]
    rows = [
        [name, w["steps"], *("-" if k not in w else f.format(w[k]) for k, _, f in WINDOW_COLUMNS)]
        for name, windows in curves.items()
        for w in windows
    ]
    out += _markdown(["run", "steps", *(title for _, title, _ in WINDOW_COLUMNS)], rows)
    hacked = curves.get(HACKED)
    if hacked and len(hacked) > 1:
        a, b = hacked[0], hacked[-1]
        fair = (
            f", fair RM {a['heldout']:+.3f} -> {b['heldout']:+.3f}"
            if "heldout" in a and "heldout" in b
            else ""
        )
        out += [
            "",
            f"{HACKED}: proxy {a['proxy']:+.3f} -> {b['proxy']:+.3f}, gold {a['gold']:+.3f} -> "
            f"{b['gold']:+.3f}{fair}, {a['length']:.1f} -> {b['length']:.1f} tokens per response (steps "
            f"{a['steps']} -> {b['steps']})",
        ]
    return out


def write(results: dict[str, Any], root: Path) -> None:
    """results.json, results.md and report.html (figures, fits, examples) in ``root``."""
    from rlhf.demo.html_report import write_html

    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (root / "results.md").write_text("# rlhf demo results\n\n" + table(results) + "\n")
    write_html(results, root, table(results), "rlhf demo results")
