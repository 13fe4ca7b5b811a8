"""`rlhf plot RUN_DIR [RUN_DIR ...]`: every run's metrics.jsonl curves as PNG and SVG files.

The metrics are grouped by what they measure (loss, accuracy, reward, KL, length, entropy,
clipping, evaluation, optimisation); each group is one figure with a panel per metric, and the
runs are overlaid in every panel, so two runs compare at a glance. The x axis is the step or,
with ``--x kl``, the KL to the reference that the RL recipes log. matplotlib, Agg backend: no
display needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("eval", ("eval_",)),
    ("clipping", ("clip",)),
    ("entropy", ("entropy",)),
    ("length", ("length", "no_eos", "repeated", "distinct")),
    ("kl", ("kl",)),
    ("accuracy", ("accuracy", "acc")),
    ("loss", ("loss", "nll")),
    ("reward", ("score", "reward", "gold", "margin", "advantage", "return", "value")),
    ("optimisation", ("lr", "grad_norm", "epoch", "explained_variance", "ratio")),
]
"""figure name -> substrings of the metric names it holds, tried in this order (first match wins)"""

SKIP = ("step",)


class PlotError(ValueError):
    """A run directory or option the user gave cannot be plotted; the message names it."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``run_dir/metrics.jsonl``; PlotError if there is none or a line is broken."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"{run_dir}: no metrics.jsonl (is it a run directory of a training verb?)")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise PlotError(f"{path}, line {n}: not JSON ({err.msg})") from None
    if not rows:
        raise PlotError(f"{path} is empty")
    return rows


def group_of(metric: str) -> str:
    """The figure a metric belongs in ('throughput' for timings and rates, 'other' otherwise)."""
    if metric.startswith("time_") or metric.endswith("_per_s"):
        return "throughput"
    for name, parts in GROUPS:
        if any(p in metric for p in parts):
            return name
    return "other"


def series(rows: list[dict[str, Any]], metric: str, x: str) -> tuple[list[float], list[float]]:
    """(x, y) of ``metric`` over the lines that have both it and ``x`` as finite numbers."""
    xs, ys = [], []
    for r in rows:
        a, b = r.get(x), r.get(metric)
        if _number(a) and _number(b):
            xs.append(float(a))
            ys.append(float(b))
    return xs, ys


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def grouped_metrics(runs: dict[str, list[dict[str, Any]]], x: str) -> dict[str, list[str]]:
    """{figure: [metric, ...]} of every numeric metric any run logs (the x key itself left out)."""
    seen: dict[str, None] = {}
    for rows in runs.values():
        for r in rows:
            for k, v in r.items():
                if k not in SKIP and k != x and _number(v):
                    seen.setdefault(k)
    groups: dict[str, list[str]] = {}
    for metric in seen:
        groups.setdefault(group_of(metric), []).append(metric)
    order = [g for g, _ in GROUPS] + ["throughput", "other"]
    return {g: sorted(groups[g]) for g in order if g in groups}


def plot_runs(run_dirs: list[str | Path], x: str = "step", out: str | Path | None = None) -> list[Path]:
    """Draw every metric group of ``run_dirs`` (overlaid) into ``out`` (default: the first run's
    ``plots/``) as ``<group>.png`` and ``<group>.svg``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if x not in ("step", "kl"):
        raise PlotError(f"--x must be step or kl, got {x!r}")
    if not run_dirs:
        raise PlotError("give at least one run directory")
    runs = {_label(Path(d), run_dirs): read_metrics(Path(d)) for d in run_dirs}
    if x == "kl":
        for rows, d in zip(runs.values(), run_dirs):
            if not any(_number(r.get("kl")) for r in rows):
                raise PlotError(
                    f"{d}: metrics.jsonl logs no 'kl' (the RL recipes log it: rlhf ppo); use --x step"
                )
    out_dir = Path(out) if out is not None else Path(run_dirs[0]) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group, metrics in grouped_metrics(runs, x).items():
        cols = min(3, len(metrics))
        n_rows = math.ceil(len(metrics) / cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.0 * n_rows), squeeze=False)
        for ax, metric in zip(axes.flat, metrics):
            for i, (label, rows) in enumerate(runs.items()):  # one colour per run in every panel
                xs, ys = series(rows, metric, x)
                if xs:
                    ax.plot(xs, ys, color=f"C{i}", marker="." if len(xs) < 40 else None, label=label)
            ax.set_title(metric, fontsize=10)
            ax.set_xlabel("KL to reference" if x == "kl" else "step")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(metrics) :]:
            ax.set_visible(False)
        fig.suptitle(group)
        fig.tight_layout()
        if len(runs) > 1:
            handles = [Line2D([], [], color=f"C{i}", label=label) for i, label in enumerate(runs)]
            fig.legend(handles=handles, loc="upper right", fontsize=8)
        for ext in ("png", "svg"):
            path = out_dir / f"{group}.{ext}"
            fig.savefig(path, dpi=110)
            written.append(path)
        plt.close(fig)
    return written


def _label(path: Path, all_dirs: list[str | Path]) -> str:
    """A run's legend name: its directory name, or more of its path when two names collide."""
    names = [Path(d).name for d in all_dirs]
    return path.name if names.count(path.name) == 1 else str(path)
