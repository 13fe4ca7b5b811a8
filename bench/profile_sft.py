"""Where an SFT step's time goes, through the real recipe (`rlhf.recipes.sft.train`).

Two views of the same run (10m GPT-2, fp32, batch 16 x 64 tokens by default):
  1. cProfile over the timed steps, grouped into the parts of the loop: collation, forward,
     loss, backward, gradient clipping, optimizer, scheduler, logging/progress bar;
  2. torch.profiler over a few steps: the aten operators that take the time.

    .venv/bin/python bench/profile_sft.py [--size 10m] [--precision fp32] [--steps 10]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

from common import (
    checkpoint,
    configure,
    demonstrations,
    run_timed,
    set_threads,
    wait_for_quiet,
    write_jsonl,
    write_results,
)

BATCH = 16
# loop part -> (file suffix, function name) of the call the recipe makes for it; each of these is
# called only by the recipe's loop, so its cumulative time (outermost calls only, for the
# recursive module call) is that part's time
PARTS = {
    "collate (collate_sft)": ("collators.py", "collate_sft"),
    "forward (model call)": ("torch/nn/modules/module.py", "_wrapped_call_impl"),
    "loss (masked_nll)": ("losses/sft.py", "masked_nll"),
    "backward (accelerator.backward)": ("accelerate/accelerator.py", "backward"),
    "clip_grad_norm_": ("accelerate/accelerator.py", "clip_grad_norm_"),
    "optimizer.step": ("accelerate/optimizer.py", "step"),
    "optimizer.zero_grad": ("accelerate/optimizer.py", "zero_grad"),
    "scheduler.step": ("torch/optim/lr_scheduler.py", "step"),
    "accelerator.reduce": ("accelerate/accelerator.py", "reduce"),
    "progress bar (tqdm set_postfix)": ("tqdm/std.py", "set_postfix"),
    "progress bar (tqdm update)": ("tqdm/std.py", "update"),
    "metrics log (RunDir.log)": ("run_dir.py", "log"),
    "batch plan (micro_batches)": ("loop.py", "micro_batches"),
}


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of the function ``name`` of the file ending with ``suffix``."""
    return sum(
        ct
        for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if func == name and file.endswith(suffix)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="10m", choices=["1m", "10m"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16-autocast", "bf16-weights"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps under cProfile")
    ap.add_argument("--torch-steps", type=int, default=3, help="steps under torch.profiler (0: skip)")
    ap.add_argument("--wait-quiet", type=float, default=0)
    args = ap.parse_args()
    threads = set_threads()

    from torch.profiler import ProfilerActivity, profile, schedule

    from rlhf.recipes.sft import Config, train

    model, vocab = checkpoint(args.size)
    dtype, mixed = {
        "fp32": ("float32", "no"),
        "bf16-autocast": ("float32", "bf16"),
        "bf16-weights": ("bfloat16", "no"),
    }[args.precision]
    with tempfile.TemporaryDirectory(prefix="profile-sft-") as tmp:
        work = Path(tmp)
        data = write_jsonl(work / "demos.jsonl", demonstrations(vocab, BATCH * 32))

        def config(name: str, steps: int) -> Config:
            cfg = configure(Config(), model, data, work / name, steps, BATCH, mixed_precision=mixed)
            cfg.model.dtype = dtype
            return cfg

        # 1. cProfile, enabled from the end of the warmup to the end of the timed steps
        prof = cProfile.Profile()
        n = args.warmup + args.steps

        def toggle(step: int) -> None:
            if step == args.warmup:
                prof.enable()
            elif step == n:
                prof.disable()

        wait_for_quiet(args.wait_quiet)
        timer = run_timed(
            lambda cfg, callbacks: train(cfg, [toggle, *callbacks]), config("cprof", n), args.warmup
        )
        stats = pstats.Stats(prof)
        wall = timer.seconds
        parts = {part: cumulative(stats, *key) / args.steps for part, key in PARTS.items()}
        step_s = wall / timer.steps
        print(f"{args.size} {args.precision}, {threads} threads: {1e3 * step_s:.0f} ms/step under cProfile")
        print(f"(other processes used {timer.other_load:.2f} cores meanwhile)\n")
        for part, s in parts.items():
            print(f"  {part:34s} {1e3 * s:8.1f} ms  {s / step_s:6.1%}")
        rest = step_s - sum(parts.values())
        print(f"  {'rest of the loop body':34s} {1e3 * rest:8.1f} ms  {rest / step_s:6.1%}")
        print("\ntop functions by own time:")
        stats.sort_stats("tottime").print_stats(15)

        # 2. torch.profiler: aten operators
        ops = []
        if args.torch_steps:
            sched = schedule(wait=args.warmup, warmup=1, active=args.torch_steps)
            with profile(activities=[ProfilerActivity.CPU], schedule=sched) as tprof:
                run_timed(
                    lambda cfg, callbacks: train(cfg, [lambda s: tprof.step(), *callbacks]),
                    config("tprof", args.warmup + 1 + args.torch_steps + 1),
                    0,
                )
            table = tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            print(table)
            ops = [
                {
                    "op": e.key,
                    "self_ms_per_step": e.self_cpu_time_total / 1e3 / args.torch_steps,
                    "calls": e.count,
                }
                for e in sorted(tprof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:40]
            ]
    write_results(
        f"profile_sft_{args.size}_{args.precision}",
        {
            "step_ms_under_cprofile": 1e3 * step_s,
            "other_load": timer.other_load,
            "threads": threads,
            "parts_ms_per_step": {k: 1e3 * v for k, v in parts.items()},
            "top_ops": ops,
        },
    )


if __name__ == "__main__":
    main()
