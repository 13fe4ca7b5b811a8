"""The demo report's figures, drawn with matplotlib (Agg) from results.json and the RL runs'
metrics.jsonl, each returned as PNG bytes, with the Gao et al. (2022) fits they show.

    rl_run          one RL run: the proxy score and the gold reward of its samples against KL to SFT,
                    each with the RL form R = d (alpha - beta log d) fitted, the gold peak marked
    best_of_n       best-of-n over n: gold reward of the reward model's pick and of gold's own
                    pick against KL, best-of-n form R = d (alpha - beta d) fitted; win rates
    rm_accuracy     the reward model's held-out pairwise accuracy per prompt family
    forgetting      each row's NLL on held-out web text (the pretraining distribution)
    win_rates       each row's gold win rate against SFT with its 95% interval
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf.eval.gao import GaoFit, fit_gao

PROXY, GOLD = "score", "gold"
"""the metrics.jsonl keys of an RL step's proxy (the reward model's normalised score the policy is
trained on) and of the gold reward of the same samples"""


@dataclass
class Fitted:
    """One fitted curve, for the report's coefficient table."""

    curve: str
    series: str
    fit: GaoFit


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return buf.getvalue()


def rl_steps(metrics: Path) -> list[dict[str, float]]:
    """The steps of an RL run's metrics.jsonl that log KL, proxy and gold (the held-out eval lines
    and a run without gold are left out)."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [r for r in rows if all(isinstance(r.get(k), int | float) for k in ("kl", PROXY, GOLD))]


def _try_fit(kl: list[float], y: list[float], form: str) -> GaoFit | None:
    try:
        return fit_gao(kl, y, form)  # type: ignore[arg-type]
    except ValueError:  # too few distinct KL values (a tiny run): no fit drawn
        return None


def _draw_fit(ax, fit: GaoFit | None, top: float, color: str, mark_peak: bool) -> None:
    import numpy as np

    if fit is None:
        return
    grid = np.linspace(0, max(top, 1e-6), 200)
    ax.plot(
        grid,
        fit.predict(grid),
        color=color,
        lw=2,
        label=f"Gao fit (alpha {fit.alpha:.2f}, beta {fit.beta:.2f})",
    )
    if mark_peak and fit.peak_kl is not None:
        ax.axvline(fit.peak_kl, color=color, ls="--", lw=1)
        ax.annotate(
            f"fitted peak\nKL {fit.peak_kl:.2f}",
            (fit.peak_kl, float(fit.predict(fit.peak_kl))),
            textcoords="offset points",
            xytext=(6, -28),
            fontsize=8,
            color=color,
        )


def windows(x: list[float], y: list[float], k: int = 6) -> tuple[list[float], list[float]]:
    """Means of ``x`` and ``y`` over ``k`` consecutive spans of (nearly) equal length: the trend
    through noisy per-step points (as the results table's proxy-vs-gold windows)."""
    k = min(k, len(x))
    bounds = [round(i * len(x) / k) for i in range(k + 1)]
    spans = [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
    return (
        [sum(x[lo:hi]) / (hi - lo) for lo, hi in spans],
        [sum(y[lo:hi]) / (hi - lo) for lo, hi in spans],
    )


def rl_run(name: str, steps: list[dict[str, float]]) -> tuple[bytes, list[Fitted]]:
    """Proxy and gold against KL to SFT for one RL run, per step, with the RL form fitted to each."""
    plt = _pyplot()
    kl = [max(0.0, s["kl"]) for s in steps]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    fits = []
    for ax, key, title, color in (
        (axes[0], PROXY, "proxy: reward model's score (normalised)", "C0"),
        (axes[1], GOLD, "gold reward of the same samples", "C3"),
    ):
        y = [s[key] for s in steps]
        ax.scatter(kl, y, s=12, alpha=0.5, color=color, label="RL step")
        wx, wy = windows(kl, y)
        ax.plot(wx, wy, "o-", color=color, lw=1.5, ms=6, label="mean of a sixth of the steps")
        fit = _try_fit(kl, y, "rl")
        # the proxy's fitted peak is no stopping point: only gold's is marked
        _draw_fit(ax, fit, max(kl) * 1.15, "black", key == GOLD)
        if fit is not None:
            fits.append(Fitted(name, "proxy" if key == PROXY else "gold", fit))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("KL to SFT (nats per response)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: proxy and gold against KL to SFT")
    return _png(fig), fits


def best_of_n(curve: list[dict[str, Any]]) -> tuple[bytes, list[Fitted]]:
    """Best-of-n over n from the same samples: gold reward of the reward model's pick (and of
    gold's own pick, where results hold it) against KL, the best-of-n form fitted; win rates."""
    plt = _pyplot()
    kl = [row["kl"] for row in curve]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    fits = []
    series = [("gold", "reward model's pick", "C0"), ("gold_pick_gold", "gold's own pick", "C2")]
    for key, label, color in series:
        if not all(key in row for row in curve):
            continue
        y = [row[key] for row in curve]
        axes[0].plot(kl, y, "o", color=color, label=label)
        for x, v, row in zip(kl, y, curve):
            axes[0].annotate(f"n={row['n']}", (x, v), textcoords="offset points", xytext=(3, 3), fontsize=7)
        fit = _try_fit(kl, y, "bon")
        _draw_fit(axes[0], fit, max(kl) * 1.3, color, True)
        if fit is not None:
            fits.append(Fitted("best-of-n", label, fit))
    axes[0].set_title("gold reward of the pick", fontsize=10)
    for key, label, color in (
        ("win_vs_sft", "reward model's pick", "C0"),
        ("gold_pick_win_vs_sft", "gold's pick", "C2"),
    ):
        if all(key in row for row in curve):
            axes[1].plot(kl, [row[key] for row in curve], "o-", color=color, label=label)
    axes[1].set_title("gold win rate against SFT", fontsize=10)
    for ax in axes:
        ax.set_xlabel("KL to SFT: log n - (n - 1) / n")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("best-of-n from SFT's samples")
    return _png(fig), fits


def rm_accuracy(overall: float, by_family: dict[str, float], others: dict[str, float]) -> bytes:
    """The reward model's held-out pairwise accuracy against gold, per family and overall;
    ``others``: the overall accuracy of other reward models (the RLAIF one), as lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    names = list(by_family) or ["all prompts"]
    values = [by_family[n] for n in by_family] or [overall]
    ax.bar(names, values, color="C0")
    ax.axhline(overall, color="black", lw=1.5, label=f"all prompts {overall:.3f}")
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    for i, (label, value) in enumerate(others.items()):
        ax.axhline(value, color=f"C{i + 2}", ls="--", lw=1.5, label=f"{label} {value:.3f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy vs gold")
    ax.set_title("reward model: held-out accuracy per prompt family", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def forgetting(stages: list[dict[str, Any]]) -> bytes:
    """Each row's token-mean NLL on held-out web text; SFT's figure as a line."""
    plt = _pyplot()
    rows = [s for s in stages if isinstance(s.get("web_nll"), int | float)]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    ax.barh([s["name"] for s in rows], [s["web_nll"] for s in rows], color="C1")
    sft = next((s["web_nll"] for s in rows if s["name"] == "sft"), None)
    if sft is not None:
        ax.axvline(sft, color="black", ls="--", lw=1, label=f"sft {sft:.3f}")
        ax.legend(fontsize=7)
    lo, hi = min(s["web_nll"] for s in rows), max(s["web_nll"] for s in rows)
    pad = max(hi - lo, 0.05 * abs(hi), 1e-3)  # the bars differ by little: start the axis near them
    ax.set_xlim(max(0.0, lo - pad), hi + 0.2 * pad)
    ax.invert_yaxis()
    ax.set_xlabel("NLL on held-out web text (forgetting: higher is worse)")
    ax.set_title("what each stage forgot of the pretraining distribution", fontsize=10)
    return _png(fig)


def win_rates(stages: list[dict[str, Any]]) -> bytes:
    """Each row's gold win rate against SFT with its 95% interval over prompts."""
    plt = _pyplot()
    rows = [s for s in stages if "gold_win_rate_vs_sft" in s]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    rates = [s["gold_win_rate_vs_sft"] for s in rows]
    lows = [r - s.get("gold_win_interval", [r, r])[0] for r, s in zip(rates, rows)]
    highs = [s.get("gold_win_interval", [r, r])[1] - r for r, s in zip(rates, rows)]
    ax.barh([s["name"] for s in rows], rates, xerr=[lows, highs], color="C2", capsize=3)
    ax.axvline(0.5, color="black", ls="--", lw=1, label="as good as SFT")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("gold win rate against SFT (ties half), 95% interval")
    ax.set_title("which stage helped, judged by gold", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)
