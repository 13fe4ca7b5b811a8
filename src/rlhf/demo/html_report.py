"""report.html: the demo's results in one self-contained page (figures inline as base64 PNG, no
script, no server, no network): the table, the Gao et al. (2022) fits with their coefficients
and the KL at which each fitted gold curve peaks, the figures of figures.py, and the examples.

Both demos (the toy world's presets and SmolLM2's) write it from their results.json and run
directories; a figure whose data a demo does not produce is left out.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from rlhf.demo import figures

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
p.note { font-size: 13px; color: #444; }
"""

HACKED_DIR = "ppo-biased"
"""the run directory of the demo's reward-hacking stage (demo/hacking.py): its figure is the first"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def markdown_to_html(text: str) -> str:
    """The demo's markdown tables (rows of ``| a | b |``) as HTML tables, other lines as paragraphs."""
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append(
                "<table><tr>"
                + "".join(f"<th>{_e(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            if set(line) <= set("|-: "):  # the separator under the header
                continue
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.strip():
            out.append(f'<p class="note">{_e(line)}</p>')
    flush()
    return "\n".join(out)


def _stop(f: figures.Fitted) -> str:
    """Where the fitted gold is best within the span the curve covers, in words."""
    if not f.stop:
        return "-"
    best = f.fit.best_kl(f.kl_max)
    if best == 0.0:
        return "KL 0: the fitted gold only falls"
    if best < f.kl_max:
        return f"KL {best:.2f}: the fitted peak"
    return f"KL {best:.2f}: still rising at the end"


def _coefficients(fits: list[figures.Fitted]) -> str:
    if not fits:
        return ""
    head = ["curve", "series", "form", "alpha", "beta", "R0", "fitted peak: KL", "stop at", "points"]
    rows = []
    for f in fits:
        form = "d (alpha - beta d)" if f.fit.form == "bon" else "d (alpha - beta log d)"
        peak = "none (no maximum)" if f.fit.peak_kl is None else f"{f.fit.peak_kl:.3f}"
        rows.append(
            [
                f.curve,
                f.series,
                form,
                f"{f.fit.alpha:.4f}",
                f"{f.fit.beta:.4f}",
                f"{f.fit.r0:+.4f}",
                peak,
                _stop(f),
                f.fit.points,
            ]
        )
    return (
        "<h2>Over-optimisation fits (Gao et al. 2022)</h2>"
        '<p class="note">R = R0 + d (alpha - beta d) for best-of-n and R = R0 + d (alpha - beta log d) '
        "for RL, d = sqrt(KL to SFT), fitted by least squares to the curves below. The fitted gold reward "
        "peaks at d* = alpha / (2 beta) (best-of-n) or log d* = alpha / beta - 1 (RL): past that KL, more "
        "optimisation of the proxy costs true quality. <b>stop at</b>: the KL, within the span the run "
        "covered, where the fitted gold reward is highest (the peak if the run reached it, KL 0 if gold "
        "only fell, the run's end if it was still rising); marked by a dashed line in the figures. A fit "
        "with as many points as coefficients (3) passes through them exactly and predicts nothing. The "
        "proxy's own fit and gold's own best-of-n pick (the ceiling) are shown for comparison.</p>"
        + markdown_to_html(_md_table(head, rows))
    )


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    return "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in [head, *rows])


def _examples(stages: list[dict[str, Any]]) -> str:
    """Each example prompt with every row's response to it (the rows share their example prompts)."""
    by_prompt: dict[str, list[tuple[str, str, float]]] = {}
    for s in stages:
        for ex in s.get("examples", []):
            by_prompt.setdefault(ex["prompt"], []).append((s["name"], ex["response"], ex["gold"]))
    parts = ["<h2>Before and after: the same prompts, every model</h2>"]
    for prompt, answers in by_prompt.items():
        rows = "".join(
            f"<tr><td>{_e(name)}</td><td>{_e(resp)}</td><td>{gold:+.2f}</td></tr>"
            for name, resp, gold in answers
        )
        parts.append(
            f"<h3>{_e(prompt.strip())}</h3><table><tr><th>model</th><th>response</th><th>gold</th></tr>{rows}</table>"
        )
    return "\n".join(parts)


def rl_runs(root: Path) -> dict[str, list[dict[str, float]]]:
    """{run directory name: its RL steps} for every run under ``root`` that logs KL, proxy and gold."""
    runs = {}
    for metrics in sorted(root.glob("*/metrics.jsonl")):
        steps = figures.rl_steps(metrics)
        if steps:
            runs[metrics.parent.name] = steps
    return runs


def write_html(results: dict[str, Any], root: Path, table_markdown: str, title: str) -> Path:
    """Write ``root/report.html``; returns its path."""
    stages = results["stages"]
    body, fits = [], []
    runs = rl_runs(root)
    if HACKED_DIR in runs:
        compared = {f"{name}: fair raters' reward model": runs[name] for name in ("ppo",) if name in runs}
        compared[f"{HACKED_DIR}: biased raters' reward model, weak KL penalty"] = runs[HACKED_DIR]
        body.append(
            _figure(
                figures.reward_hacking(compared),
                "Reward hacking: the proxy (the reward model's score the policy is trained on, left axis) "
                "and the gold reward of the same samples (right axis) over the run, each point the mean of "
                "a sixth of its steps, with the same axes in both panels. Against the reward model "
                "of raters who favour long, confident answers, the proxy climbs while gold falls; the "
                "dashed line is the fair raters' reward model scoring the same samples: the check a "
                "practitioner without a gold scorer can make.",
            )
        )
    for name, steps in runs.items():
        png, f = figures.rl_run(name, steps)
        fits += f
        body.append(
            _figure(
                png,
                f"{name}: every RL step's proxy score and the gold reward of the same samples against the "
                "KL of the samples to SFT, with Gao's RL form fitted to each and the stop point marked on "
                "gold (dashed).",
            )
        )
    curve = results.get("best_of_n_curve") or []
    if len({row["kl"] for row in curve}) >= 2:
        png, f = figures.best_of_n(curve)
        fits += f
        body.append(
            _figure(
                png,
                "Best-of-n from SFT's samples: the gold reward of the reward model's pick and of gold's own "
                "pick (the ceiling) against KL, Gao's best-of-n form fitted to each and the stop point of "
                "the reward model's pick marked (dashed); and their win rates against SFT.",
            )
        )
    rm = results.get("reward_model") or {}
    if "heldout_accuracy_vs_gold" in rm:
        others = {}
        if "rlaif" in results:
            others["RLAIF reward model"] = results["rlaif"]["reward_model_heldout_accuracy_vs_gold"]
        body.append(
            _figure(
                figures.rm_accuracy(
                    rm["heldout_accuracy_vs_gold"], rm.get("heldout_accuracy_by_family", {}), others
                ),
                "The reward model's pairwise accuracy against the gold ordering on SFT samples for held-out "
                "prompts, per family.",
            )
        )
    if any(isinstance(s.get("web_nll"), int | float) for s in stages):
        body.append(
            _figure(
                figures.forgetting(stages),
                "Forgetting: each model's NLL on held-out text of the pretraining kind.",
            )
        )
    if any("gold_win_rate_vs_sft" in s for s in stages):
        body.append(
            _figure(figures.win_rates(stages), "Each model's gold win rate against SFT, 95% interval.")
        )
    cfg = results.get("config", {})
    seconds = results.get("seconds", {}).get("total")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">preset {_e(cfg.get("preset", "?"))}, seed {_e(cfg.get("seed", "?"))}'
        + (f", {seconds:.0f} s" if isinstance(seconds, int | float) else "")
        + "</p>",
        "<h2>Results</h2>",
        markdown_to_html(table_markdown),
        _coefficients(fits),
        "<h2>Figures</h2>",
        *body,
        _examples(stages),
        "</body></html>",
    ]
    path = root / "report.html"
    path.write_text("\n".join(page) + "\n")
    return path
