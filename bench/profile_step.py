"""Where a training step's time goes, through the real recipe (`rlhf.recipes.sft.train` or
`rlhf.recipes.reward.train`).

Two views of the same setup as bench_sft.py / bench_reward.py (default: SFT, 10m GPT-2, fp32,
batch 16 x 64 tokens):
  1. cProfile over the timed steps, grouped into the parts of the loop: collation, forward,
     loss, backward, gradient clipping, optimizer, scheduler, logging/progress bar;
  2. torch.profiler over a few steps: the aten operators that take the time.

    .venv/bin/python bench/profile_step.py [--recipe sft|reward] [--size 10m] [--precision fp32]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import tempfile
from pathlib import Path

from common import (
    BUSY,
    checkpoint,
    configure,
    demonstrations,
    rankings,
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
    "collate (collate_sft / collate_groups)": ("collators.py", "collate_.*"),
    "forward (model call)": ("torch/nn/modules/module.py", "_wrapped_call_impl"),
    "loss (masked_nll / group_losses)": ("losses/", "masked_nll|group_losses"),
    "reward metrics (pairwise_accuracy)": ("bradley_terry.py", "pairwise_accuracy"),
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
    """Cumulative seconds of the functions matching ``name`` (a regex) of files containing
    ``suffix``."""
    return sum(
        ct
        for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if re.fullmatch(name, func) and suffix in file
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="sft", choices=["sft", "reward"])
    ap.add_argument("--k", type=int, default=2, help="responses per reward record (2: pairs)")
    ap.add_argument("--size", default="10m", choices=["1m", "10m"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16-autocast", "bf16-weights"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps under cProfile")
    ap.add_argument("--torch-steps", type=int, default=3, help="steps under torch.profiler (0: skip)")
    ap.add_argument("--wait-quiet", type=float, default=0)
    args = ap.parse_args()
    threads = set_threads()

    import importlib

    from torch.profiler import ProfilerActivity, profile, schedule

    recipe = importlib.import_module(f"rlhf.recipes.{args.recipe}")
    Config, train = recipe.Config, recipe.train

    model, vocab = checkpoint(args.size)
    dtype, mixed = {
        "fp32": ("float32", "no"),
        "bf16-autocast": ("float32", "bf16"),
        "bf16-weights": ("bfloat16", "no"),
    }[args.precision]
    with tempfile.TemporaryDirectory(prefix="profile-step-") as tmp:
        work = Path(tmp)
        if args.recipe == "sft":
            data = write_jsonl(work / "demos.jsonl", demonstrations(vocab, BATCH * 32))
        else:
            data = write_jsonl(work / "prefs.jsonl", rankings(vocab, BATCH * 32, args.k))

        def config(name: str, steps: int):
            cfg = configure(Config(), model, data, work / name, steps, BATCH, mixed_precision=mixed)
            cfg.model.dtype = dtype
            if args.recipe == "reward":
                cfg.reward.stats_records = BATCH
            return cfg

        # 1. cProfile, enabled from the end of the warmup to the end of the timed steps; run
        # again (at most twice) if a neighbour process took a core meanwhile
        n = args.warmup + args.steps
        for attempt in range(3):
            prof = cProfile.Profile()

            def toggle(step: int, prof: cProfile.Profile = prof) -> None:
                if step == args.warmup:
                    prof.enable()
                elif step == n:
                    prof.disable()

            wait_for_quiet(args.wait_quiet)
            timer = run_timed(
                lambda cfg, callbacks: train(cfg, [toggle, *callbacks]),
                config(f"cprof{attempt}", n),
                args.warmup,
            )
            if args.wait_quiet <= 0 or timer.other_load <= BUSY:
                break
        stats = pstats.Stats(prof)
        wall = timer.seconds
        parts = {part: cumulative(stats, *key) / args.steps for part, key in PARTS.items()}
        step_s = wall / timer.steps
        what = f"{args.recipe} {args.size} {args.precision}" + (
            f" K={args.k}" if args.recipe == "reward" else ""
        )
        print(f"{what}, {threads} threads: {1e3 * step_s:.0f} ms/step under cProfile")
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
            for attempt in range(3):
                wait_for_quiet(args.wait_quiet)
                with profile(activities=[ProfilerActivity.CPU], schedule=sched) as tprof:
                    ttimer = run_timed(
                        lambda cfg, callbacks, tprof=tprof: train(cfg, [lambda s: tprof.step(), *callbacks]),
                        config(f"tprof{attempt}", args.warmup + 1 + args.torch_steps + 1),
                        args.warmup,
                    )
                if args.wait_quiet <= 0 or ttimer.other_load <= BUSY:
                    break
            print(f"torch.profiler: other processes used {ttimer.other_load:.2f} cores meanwhile")
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
        f"profile_{args.recipe}_{args.size}_{args.precision}"
        + (f"_k{args.k}" if args.recipe == "reward" else ""),
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
