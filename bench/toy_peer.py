"""The peer's rows of the toy-model benchmarks: TRL on the same tiny checkpoint, records, batch and
lengths as our row, in the same run, so that every "x TRL" figure is a ratio of two measurements
taken minutes apart on the same machine.

The peer runs bench/real_trl.py (the real-model benchmark's worker, which takes any checkpoint
directory) in its own venv and process: TRL 1.16 (.venv-trl116) for SFT, reward models, DPO and
GRPO, TRL 1.12 (.venv-trl112, the last release with PPOTrainer) for PPO; `make bench-peers` builds
both. The worker times each optimizer step after ``warmup`` steps through a TrainerCallback, as
ours is timed through the recipe's callbacks, and reports the median step, its CPU seconds, the
cores other processes used meanwhile and its peak memory (bench/real_setup.py: report).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = {
    "sft": ".venv-trl116",
    "reward": ".venv-trl116",
    "dpo": ".venv-trl116",
    "grpo": ".venv-trl116",
    "ppo": ".venv-trl112",
}
PRECISIONS = {
    # our row's precision -> the peer's weights dtype and bf16 autocast (TrainingArguments.bf16)
    "fp32": ("float32", False),
    "bf16-autocast": ("float32", True),
    "bf16": ("float32", True),  # bench_ppo's bf16: train.mixed_precision=bf16 on fp32 weights
    "bf16-weights": ("bfloat16", True),
}
TIMEOUT_S = 600


def peer_python(algo: str, skip_hint: str = " (or pass --no-peer)") -> Path:
    """The peer venv's python for ``algo``; exits naming `make bench-peers` (and ``skip_hint``: how
    the calling bench runs without the peer) if it is not built."""
    python = ROOT / VENVS[algo] / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"{python} is missing: run `make bench-peers` to build the peer venvs{skip_hint}")
    return python


def run_peer(
    algo: str,
    precision: str,
    model: Path,
    data: dict[str, str],
    work: Path,
    batch: int,
    warmup: int,
    steps: int,
    threads: int,
    samples: int = 1,
    attn: str = "sdpa",
    reward_model: Path | None = None,
    beta: float = 0.0,
    verbose: bool = False,
) -> dict[str, Any]:
    """One peer row: TRL's ``algo`` trainer on ``model`` with ``batch`` prompts (records) a step and
    ``samples`` completions a prompt. Returns the ``peer_*`` fields of our row (``peer_per_s``:
    items a step / median step time)."""
    dtype, bf16 = PRECISIONS[precision]
    row = {
        "name": f"toy-{algo}-{precision}",
        "algo": algo,
        "mode": "full",
        "model": str(model),
        "reward_model": str(reward_model) if reward_model else None,
        "data": data,
        "work": str(work),
        "prompts": batch,
        "samples": samples,
        "warmup": warmup,
        "steps": steps,
        "threads": threads,
        "attn": "sdpa" if attn == "auto" else attn,
        "dtype": dtype,
        "bf16": bf16,
        "beta": beta,
        "verbose": verbose,
    }
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.pop("PYTHONPATH", None)  # the peer must not see the project
    t = time.perf_counter()
    proc = subprocess.run(
        [str(peer_python(algo)), str(ROOT / "bench" / "real_trl.py"), json.dumps(row)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"peer {row['name']} failed (exit {proc.returncode})")
    out = json.loads(lines[-1][len("RESULT ") :])
    return {
        "peer_per_s": batch * samples / out["step_s"],
        "peer_step_s": out["step_s"],
        "peer_step_times": out["step_times"],
        "peer_cpu_s": out["cpu_s"],
        "peer_load": out["other_load"],
        "peer_rss_mb": out["peak_rss_mb"],
        "peer_settings": out["settings"],
        "peer_wall_s": time.perf_counter() - t,
    }


def add_peer_args(ap: Any) -> None:
    """The option every toy benchmark takes to skip its peer rows."""
    ap.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the peer (TRL) rows: no 'x TRL' ratio is printed or saved",
    )


def compare(row: dict[str, Any], peer: dict[str, Any], per_s: str) -> None:
    """Add the peer's fields to our ``row`` and the ratios: ``vs_peer`` = our ``per_s`` / the peer's
    (wall clock); ``vs_peer_cpu`` = the peer's CPU seconds a step / ours (both steps do the same
    items). With one torch thread a side on a shared machine, the CPU ratio is the steadier one."""
    row.update(peer)
    row["vs_peer"] = row[per_s] / peer["peer_per_s"]
    row["vs_peer_cpu"] = peer["peer_cpu_s"] / row["cpu_s"]


SETUP = {
    "peer": (
        "TRL on the same checkpoint, records, batch and lengths, in the same run, in its own venv and "
        "process (bench/toy_peer.py): TRL 1.16 for SFT, reward, DPO and GRPO, TRL 1.12 for PPO"
    ),
    "vs_peer": "ours per second / the peer's (median step times)",
    "vs_peer_cpu": "the peer's CPU seconds a step / ours",
    "cpu_s": "median CPU seconds of our process a step (peer_cpu_s: the peer's)",
    "peer_load": "mean cores used by other processes during the peer's timed steps",
}
