"""Written to a file (CI, nohup, a job log), a training verb prints plain progress lines: no
carriage returns, no third-party progress bars, a few hundred bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .helpers import sft_overrides

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_a_verb_logged_to_a_file_prints_plain_lines(nano_model, data_dir, tmp_path):
    log = tmp_path / "log.txt"
    args = sft_overrides(nano_model, data_dir / "demos.jsonl", tmp_path / "run", "train.max_steps=20")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-m", "rlhf.cli", "sft", *args], stdout=fh, stderr=fh, env=env, check=True
        )
    text = log.read_text()
    assert "\r" not in text, text[-2000:]
    assert "Loading weights" not in text and "Writing model shards" not in text and "it/s]" not in text
    assert "WARNING" not in text and "Setting accelerator" not in text, text  # DeepSpeed's import notice
    lines = [x for x in text.splitlines() if x.startswith("[sft] step ")]
    # one line every tenth of the run: steps 2, 4, ... 20, each with the loss
    assert [x.split()[2].rstrip(",") for x in lines] == [f"{s}/20" for s in range(2, 21, 2)], text
    assert all("loss" in x for x in lines)
    assert len(text.encode()) < 4000, text


def test_plain_progress_prints_a_line_every_tenth(capsys):
    from rlhf.progress import PlainProgress

    bar = PlainProgress(total=30, initial=0, desc="ppo", stream=sys.stdout)
    for step in range(30):
        bar.update(1)
        bar.set_postfix(kl=f"{step:.1f}")
    bar.close()
    out = capsys.readouterr().out.splitlines()
    assert [x.split()[2].rstrip(",") for x in out] == [f"{s}/30" for s in range(3, 31, 3)]
    assert out[-1].endswith("kl 28.0")  # the postfix set after the step before
