"""The run directory contract (docs/run-directory.md).

    <output_dir>/config.yaml           resolved config
    <output_dir>/metrics.jsonl         one JSON object per logged step
    <output_dir>/data.json             record counts: read, truncated, dropped
    <output_dir>/checkpoints/step-N    accelerate state (model, optimizer, scheduler, RNG) + state.json
    <output_dir>/final/                Hugging Face model + tokenizer
    <output_dir>/samples/              generations logged during training
    <output_dir>/tensorboard/          event files, with train.report_to=tensorboard (trackers.py)

Checkpoints and ``final/`` are written into a temporary directory and renamed into place, so a
run killed mid-write leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf.config import save_config
from rlhf.recipes import trackers

if TYPE_CHECKING:  # hints only
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

STEP_DIR = re.compile(r"^step-(\d+)$")


class RunDir:
    def __init__(self, output_dir: str | Path, is_main: bool = True):
        self.root = Path(output_dir)
        self.is_main = is_main
        self.checkpoints = self.root / "checkpoints"
        self.final = self.root / "final"
        self.samples = self.root / "samples"
        self.metrics_path = self.root / "metrics.jsonl"
        self.tracking = None  # the accelerator whose trackers get every logged line (write_config)
        if is_main:
            for d in (self.root, self.checkpoints, self.samples):
                d.mkdir(parents=True, exist_ok=True)

    def write_config(self, cfg: Any, accelerator: Accelerator | None = None) -> None:
        """Write config.yaml and, if ``accelerator`` has trackers (train.report_to), start them with
        ``cfg`` as hyperparameters: from then on ``log`` reports to them too."""
        if self.is_main:
            save_config(cfg, self.root / "config.yaml")
        if accelerator is not None and trackers.start(accelerator, cfg, self.root):
            self.tracking = accelerator

    def write_json(self, name: str, obj: Any) -> None:
        if self.is_main:
            (self.root / name).write_text(json.dumps(obj, indent=2) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl line; the trackers get its numbers at its ``step``."""
        if self.is_main:
            with self.metrics_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.tracking is not None:
                self.tracking.log(trackers.scalars(record), step=record.get("step"))

    def truncate_metrics(self, step: int) -> None:
        """Drop metric lines logged after ``step``: on resume they will be logged again."""
        if not self.is_main or not self.metrics_path.exists():
            return
        keep = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if json.loads(line).get("step", 0) <= step
        ]
        self.metrics_path.write_text("".join(line + "\n" for line in keep))

    def checkpoint_steps(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        steps = []
        for p in self.checkpoints.iterdir():
            m = STEP_DIR.match(p.name)
            if m and (p / "state.json").is_file():
                steps.append(int(m.group(1)))
        return sorted(steps)

    def latest_checkpoint(self) -> Path | None:
        steps = self.checkpoint_steps()
        return self.checkpoints / f"step-{steps[-1]}" if steps else None

    def save_checkpoint(
        self, accelerator: Accelerator, step: int, state: dict[str, Any], keep: int, extra: dict | None = None
    ) -> Path:
        """Save accelerate's full state plus ``state`` (step, data position) atomically. ``extra``:
        more Accelerators (name -> one; a second DeepSpeed engine), each saved in its subdirectory."""
        final = self.checkpoints / f"step-{step}"
        tmp = self.checkpoints / f".tmp-step-{step}"
        if accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        for name, other in (extra or {}).items():
            other.save_state(str(tmp / name))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / "state.json").write_text(json.dumps({"step": step, **state}) + "\n")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in self.checkpoint_steps()[:-keep] if keep > 0 else []:
                shutil.rmtree(self.checkpoints / f"step-{old}", ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    def load_checkpoint(
        self, accelerator: Accelerator, path: Path, extra: dict | None = None
    ) -> dict[str, Any]:
        accelerator.load_state(str(path))
        for name, other in (extra or {}).items():
            other.load_state(str(path / name))
        return json.loads((path / "state.json").read_text())

    def resume(
        self, accelerator: Accelerator, enabled: bool, extra: dict | None = None
    ) -> tuple[int, Path | None]:
        """Load the newest checkpoint if ``enabled``; returns (step to start from, checkpoint).

        Starting over (``enabled`` false) moves earlier checkpoints to ``checkpoints.old-N/``
        rather than deleting them, so that nothing saved is lost and no stale checkpoint is
        resumed later. Metric lines after the starting step are dropped: they will be redone.
        """
        latest = self.latest_checkpoint()
        start = 0
        if latest is not None and enabled:
            start = self.load_checkpoint(accelerator, latest, extra)["step"]
            accelerator.print(f"resumed from {latest} at step {start}")
        elif latest is not None and accelerator.is_main_process:
            n = 0
            while (aside := self.root / f"checkpoints.old-{n}").exists():
                n += 1
            self.checkpoints.rename(aside)
            self.checkpoints.mkdir()
            accelerator.print(f"train.resume=false: earlier checkpoints moved to {aside}")
        accelerator.wait_for_everyone()
        self.truncate_metrics(start)
        return start, (latest if start else None)

    def save_final(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        config_updates: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``model`` whole into a temp dir, check it, then rename it to final/.

        Collective: every process enters (under FSDP2/ZeRO-3 the weights are gathered from all of
        them); the main process writes. A model that is not whole raises SaveError on every
        process and final/ is left as it was.
        """
        from rlhf.recipes.saving import save_model

        tmp = self.root / ".tmp-final"
        if accelerator.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        save_model(accelerator, model, tokenizer, tmp, config_updates)
        if accelerator.is_main_process:
            if self.final.exists():
                shutil.rmtree(self.final)
            tmp.rename(self.final)
        accelerator.wait_for_everyone()
        if self.tracking is not None:  # the run is whole: close its trackers
            trackers.finish(self.tracking)
            self.tracking = None
        return self.final
