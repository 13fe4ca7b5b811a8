"""Experiment trackers (``train.report_to``): TensorBoard, Weights & Biases, trackio.

Through accelerate's tracker API: ``make_accelerator`` builds the ``Accelerator`` with
``log_with`` and a logging directory under the run directory; ``RunDir`` starts the trackers
with the resolved config as hyperparameters (``start``), hands them every ``metrics.jsonl`` line
at its step (``log``) and closes them after ``final/`` is written (``finish``). accelerate logs
on the main process only. So every training verb reports the same figures, at the same steps, to
``metrics.jsonl`` and to each tracker, and no recipe repeats any of it.

Offline by default: TensorBoard writes event files under ``<output_dir>/tensorboard/``; W&B runs
in offline mode (``WANDB_MODE=offline``, files under ``<output_dir>/wandb/``) unless the user set
``WANDB_MODE``; trackio keeps a local database (its own ``TRACKIO_DIR``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf.config import ConfigError

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
"""tracker -> the package it needs (extra `track`: pip install 'rlhf[track]')"""

PROJECT = "rlhf"
"""the W&B / trackio project, and the folder under <output_dir>/tensorboard/ the event files go to"""


def resolve(report_to: list[str], key: str = "train.report_to") -> list[str]:
    """The trackers ``report_to`` names, checked: known, installed, and ``none`` alone.

    Returns [] for ``none`` (or an empty list). Raises ConfigError naming ``key`` and the missing
    package, before any work starts."""
    names = list(dict.fromkeys(report_to))  # keep order, drop repeats
    if names in ([], ["none"]):
        return []
    if "none" in names:
        raise ConfigError(f"{key}: 'none' cannot be combined with trackers, got {','.join(report_to)}")
    for name in names:
        if name not in PACKAGES:
            raise ConfigError(f"{key}: unknown tracker {name!r}; choose from none, {', '.join(PACKAGES)}")
        package = PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"{key}={name} needs the {package!r} package, which is not installed: "
                f"pip install {package} (or pip install 'rlhf[track]')"
            )
    return names


def accelerator_kwargs(report_to: list[str], output_dir: str | Path) -> dict[str, Any]:
    """``log_with`` and ``project_config`` for ``Accelerator(...)``; empty when nothing is tracked."""
    names = resolve(report_to)
    if not names:
        return {}
    from accelerate.utils import ProjectConfiguration

    if "wandb" in names:
        os.environ.setdefault("WANDB_MODE", "offline")  # no network unless the user asks for it
    root = Path(output_dir)
    return {
        "log_with": names,
        "project_config": ProjectConfiguration(project_dir=str(root), logging_dir=str(root / "tensorboard")),
    }


def hyperparameters(cfg: Any, prefix: str = "") -> dict[str, bool | int | float | str]:
    """A config dataclass flattened to ``{"section.key": value}`` with scalar values only (what
    TensorBoard's hparams accept): lists become comma-joined strings, None an empty string."""
    out: dict[str, bool | int | float | str] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(hyperparameters(value, key + "."))
        elif isinstance(value, list | tuple):
            out[key] = ",".join(str(v) for v in value)
        elif value is None:
            out[key] = ""
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of one ``metrics.jsonl`` line, without ``step`` (the trackers' x axis)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def init_kwargs(output_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per-tracker arguments of ``init_trackers``: the run is named after its directory, and W&B
    keeps its files in it."""
    root = Path(output_dir)
    return {"wandb": {"name": root.name, "dir": str(root)}, "trackio": {"name": root.name}}


def start(accelerator: Accelerator, cfg: Any, output_dir: str | Path) -> bool:
    """Start the accelerator's trackers with ``cfg`` as hyperparameters; False when there are none."""
    if not getattr(accelerator, "log_with", None):
        return False
    accelerator.init_trackers(PROJECT, config=hyperparameters(cfg), init_kwargs=init_kwargs(output_dir))
    return True


def finish(accelerator: Accelerator) -> None:
    """Close every tracker (flush TensorBoard, finish the W&B and trackio runs).

    Not ``accelerator.end_training()``: that also destroys the process group, which the CLI closes
    itself once every process is done (a demo runs several recipes in one process)."""
    for tracker in accelerator.trackers:
        tracker.finish()  # each tracker acts on the main process only
    accelerator.trackers = []
