"""The demo report's figures, drawn with matplotlib (Agg) from results.json and the RL runs'
metrics.jsonl, each returned as PNG bytes, with the Gao et al. (2022) fits they show.

    reward_hacking  RL runs side by side: the proxy and the gold reward over the run, window means
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
    kl_max: float
    """the largest KL among the fitted points: the span the curve covers"""
    stop: bool
    """whether its best point is a point to stop (the gold reward of what was optimised), not a
    proxy's or a ceiling's"""


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


def _draw_fit(ax, fit: GaoFit | None, kl_max: float, color: str, mark_stop: bool) -> None:
    """The fitted curve over the data's span (and a little beyond), and where asked, the stop point:
    the best fitted KL within the span. A peak beyond the data is named, not drawn: a line far to
    the right would squeeze the data into the left edge of the panel."""
    import numpy as np

    if fit is None:
        return
    grid = np.linspace(0, max(kl_max, 1e-6) * 1.1, 200)
    ax.plot(
        grid,
        fit.predict(grid),
        color=color,
        lw=2,
        label=f"Gao fit (alpha {fit.alpha:.2f}, beta {fit.beta:.2f})",
    )
    if not mark_stop:
        return
    best = fit.best_kl(kl_max)
    if 0.0 < best < kl_max:
        text, side = f"stop: fitted peak\nat KL {best:.2f}", "left"
    elif best == 0.0:
        text, side = "stop at KL 0:\nthe fitted gold\nonly falls", "left"
    else:
        beyond = "" if fit.peak_kl is None else f"\n(its peak: KL {fit.peak_kl:.1f})"
        text, side = f"fitted gold still\nrising at the end{beyond}", "right"
    ax.axvline(best, color=color, ls="--", lw=1.2)
    ax.annotate(
        text,
        (best, float(fit.predict(best))),
        textcoords="offset points",
        xytext=(6 if side == "left" else -6, -34),
        ha=side,
        fontsize=8,
        color=color,
        fontweight="bold",
        bbox={"boxstyle": "round", "fc": "white", "ec": color, "alpha": 0.85},  # legible over the points
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
        # numbered, not joined: KL is not monotone in the step, and a line through them zig-zags
        ax.plot(wx, wy, "o", color=color, mec="black", ms=7, label="mean of each sixth of the run (1-6)")
        for i, (x, v) in enumerate(zip(wx, wy)):
            ax.annotate(str(i + 1), (x, v), textcoords="offset points", xytext=(4, 4), fontsize=7)
        fit = _try_fit(kl, y, "rl")
        # the proxy's fitted peak is no stopping point: only gold's is marked
        _draw_fit(ax, fit, max(kl), "black", key == GOLD)
        if fit is not None:
            fits.append(Fitted(name, "proxy" if key == PROXY else "gold", fit, max(kl), key == GOLD))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("KL to SFT (nats per response)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: proxy and gold against KL to SFT")
    return _png(fig), fits


def _span(values: list[float], pad: float = 0.12) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    margin = max(hi - lo, 1e-3) * pad
    return lo - margin, hi + margin


def reward_hacking(runs: dict[str, list[dict[str, float]]]) -> bytes:
    """Reward hacking at a glance: one panel per RL run ({title: its steps}), the proxy (left axis)
    and the gold reward of the same samples (right axis) over the run, each a mean over a sixth of
    its steps, with the same axes in every panel. Where a run was watched by a second reward model
    (``score_heldout``), its score is drawn too. A run whose proxy climbs while gold falls is
    optimising the reward model's mistakes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4.4), squeeze=False)
    means = {}
    for title, steps in runs.items():
        step = [float(s["step"]) for s in steps]
        keys = [PROXY, GOLD, *(["score_heldout"] if all("score_heldout" in s for s in steps) else [])]
        means[title] = (windows(step, step)[0], {k: windows(step, [s[k] for s in steps])[1] for k in keys})
    left = _span([v for _, ser in means.values() for k, vs in ser.items() if k != GOLD for v in vs])
    right = _span([v for _, ser in means.values() for v in ser[GOLD]])
    last = max(s["step"] for steps in runs.values() for s in steps)
    for ax, (title, (x, ser)) in zip(axes[0], means.items()):
        gold_ax = ax.twinx()
        lines = ax.plot(x, ser[PROXY], "o-", color="C0", lw=2, label="proxy: the reward model trained on")
        if "score_heldout" in ser:
            lines += ax.plot(
                x, ser["score_heldout"], "s--", color="C9", lw=1.5, label="the fair raters' reward model"
            )
        lines += gold_ax.plot(x, ser[GOLD], "o-", color="C3", lw=2, label="gold reward")
        ax.set_ylim(*left)
        gold_ax.set_ylim(*right)
        ax.set_xlim(0, last * 1.03)
        ax.set_xlabel("RL step (each point: the mean of a sixth of the run)")
        ax.set_ylabel("reward model score (normalised)", color="C0")
        gold_ax.set_ylabel("gold reward", color="C3")
        proxy, gold = ser[PROXY], ser[GOLD]
        moves = f"proxy {proxy[0]:+.2f} -> {proxy[-1]:+.2f}, gold {gold[0]:+.2f} -> {gold[-1]:+.2f}"
        ax.set_title(f"{title}\n{moves}", fontsize=10)
        ax.grid(alpha=0.3)
        # below the panel: inside, it would hide the very points it names
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # fmt: skip
    fig.suptitle("reward hacking: the proxy climbs while the gold reward of the same samples falls")
    return _png(fig)


def best_of_n(curve: list[dict[str, Any]]) -> tuple[bytes, list[Fitted]]:
    """Best-of-n over n from the same samples: gold reward of the reward model's pick (and of
    gold's own pick, where results hold it) against KL, the best-of-n form fitted; win rates."""
    plt = _pyplot()
    kl = [row["kl"] for row in curve]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    fits = []
    # only the reward model's pick optimises a proxy: gold's own pick is the ceiling, no stop point
    series = [("gold", "reward model's pick", "C0", True), ("gold_pick_gold", "gold's own pick", "C2", False)]
    for key, label, color, stop in series:
        if not all(key in row for row in curve):
            continue
        y = [row[key] for row in curve]
        axes[0].plot(kl, y, "o", color=color, label=label)
        for x, v, row in zip(kl, y, curve):
            axes[0].annotate(f"n={row['n']}", (x, v), textcoords="offset points", xytext=(3, 3), fontsize=7)
        fit = _try_fit(kl, y, "bon")
        _draw_fit(axes[0], fit, max(kl), color, stop)
        if fit is not None:
            fits.append(Fitted("best-of-n", label, fit, max(kl), stop))
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
    fig, ax = plt.subplots(figsize=(8.5, 3.4))
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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: bars fill the panel
    return _png(fig)


def forgetting(stages: list[dict[str, Any]]) -> bytes:
    """Each row's token-mean NLL on held-out web text, as a dot (the rows differ by little, so the
    axis starts near them, which bars would exaggerate); SFT's figure as a line."""
    plt = _pyplot()
    rows = [s for s in stages if isinstance(s.get("web_nll"), int | float)]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    ax.plot([s["web_nll"] for s in rows], [s["name"] for s in rows], "o", color="C1", ms=7)
    ax.grid(axis="x", lw=0.5, alpha=0.5)
    ax.margins(y=0.25)
    sft = next((s["web_nll"] for s in rows if s["name"] == "sft"), None)
    if sft is not None:
        ax.axvline(sft, color="black", ls="--", lw=1, label=f"sft {sft:.3f}")
        ax.legend(fontsize=7)
    lo, hi = min(s["web_nll"] for s in rows), max(s["web_nll"] for s in rows)
    pad = max(hi - lo, 0.05 * abs(hi), 1e-3)
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
    for i, (rate, high) in enumerate(zip(rates, highs)):  # a rate of 0 draws no bar: the number says so
        ax.annotate(f"{rate:.2f}", (rate + high + 0.01, i), va="center", fontsize=7, color="black")
    ax.axvline(0.5, color="black", ls="--", lw=1, label="as good as SFT")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("gold win rate against SFT (ties half), 95% interval")
    ax.set_title("which stage helped, judged by gold", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)
