"""SFT training throughput through the real recipe: `rlhf.recipes.sft.train`.

Each row trains a tiny GPT-2 (1m or 10m parameters) on generated demonstrations of exactly
32 prompt + 32 response tokens (no padding), batch 16, and times the optimizer steps after a
warmup with the recipe's ``callbacks`` hook, so collation, loss, clipping, the optimizer, the
scheduler and logging are all in the time; loading, tokenizing and the final save are not.

Achieved FLOP/s = 6 x parameters x tokens / s (every position of the sequence goes through the
model, prompt included; parameters that do matmul work: common.flop_params), shown against the
measured matmul rate of the same dtype.

Each row also runs the peer, TRL 1.16's SFTTrainer, on the same checkpoint, demonstrations, batch
and precision in its own venv and process (bench/toy_peer.py; `make bench-peers`), and saves the
ratio ``vs_peer`` (wall clock) and ``vs_peer_cpu`` (CPU seconds a step); ``--no-peer`` skips it.

    .venv/bin/python bench/bench_sft.py [--quick] [--threads 1] [--no-peer]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import (
    BUSY,
    PROMPT_TOKENS,
    RESPONSE_TOKENS,
    bench_parser,
    checkpoint,
    configure,
    demonstrations,
    flop_params,
    last_metric,
    machine_info,
    measure_quietly,
    n_params,
    peak,
    run_timed,
    start,
    table,
    write_jsonl,
    write_results,
)
from toy_peer import SETUP, add_peer_args, compare, run_peer

BATCH = 16
# precision -> (model.dtype, train.mixed_precision, matmul dtype of the ceiling)
PRECISIONS = {
    "fp32": ("float32", "no", "fp32"),
    "bf16-autocast": ("float32", "bf16", "bf16"),
    "bf16-weights": ("bfloat16", "no", "bf16"),
}


def bench_row(size: str, precision: str, warmup: int, steps: int, work: Path, verbose: bool) -> dict:
    from rlhf.recipes.sft import Config, train

    model, vocab = checkpoint(size)
    data = write_jsonl(work / "demos.jsonl", demonstrations(vocab, BATCH * 32))
    dtype, mixed, _ = PRECISIONS[precision]
    cfg = configure(
        Config(),
        model,
        data,
        work / f"sft-{size}-{precision}",
        warmup + steps,
        BATCH,
        mixed_precision=mixed,
        log_every=10,
    )
    cfg.model.dtype = dtype
    timer = run_timed(train, cfg, warmup, verbose)
    times = timer.step_times()
    # the median step: robust to a neighbour process stealing a core for a few steps
    samples_per_s = BATCH / statistics.median(times)
    return {
        "size": size,
        "params": n_params(model),
        "flop_params": flop_params(model, lm_head=True),
        "precision": precision,
        "steps": timer.steps,
        "step_ms": 1e3 * statistics.median(times),
        "step_ms_min": 1e3 * min(times),
        "step_ms_max": 1e3 * max(times),
        "samples_per_s": samples_per_s,
        "samples_per_s_mean": timer.steps * BATCH / timer.seconds,
        "cpu_s": statistics.median(timer.cpu_step_times()),
        "tokens_per_s": samples_per_s * (PROMPT_TOKENS + RESPONSE_TOKENS),
        "response_tokens_per_s": samples_per_s * RESPONSE_TOKENS,
        "other_load": timer.other_load,
        # the recipe's own figure, last metrics.jsonl line: counted from before step 1, so it
        # includes the first (slow) steps and only response (loss) tokens
        "recipe_tokens_per_s": last_metric(Path(cfg.train.output_dir), "response_tokens_per_s"),
    }


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per row")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row")
    ap.add_argument("--sizes", nargs="+", default=["1m", "10m"], choices=["1m", "10m"])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    add_peer_args(ap)
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    steps = args.steps if args.steps is not None else (5 if args.quick else 30)

    info, rates = start(args)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        for size in args.sizes:
            for precision in args.precisions:
                row = measure_quietly(
                    args.wait_quiet, bench_row, size, precision, warmup, steps, Path(tmp), args.verbose
                )
                ceiling = peak(rates, PRECISIONS[precision][2])
                row["flops_per_s"] = 6 * row["flop_params"] * row["tokens_per_s"]
                row["matmul_flops_per_s"] = ceiling
                row["mfu"] = row["flops_per_s"] / ceiling
                if not args.no_peer:
                    model, _ = checkpoint(size)
                    demos = {"demos": str(Path(tmp) / "demos.jsonl")}  # the records our row trained on
                    peer = run_peer(
                        "sft", precision, model, demos, Path(tmp), BATCH, warmup, steps, info["torch_threads"]
                    )
                    compare(row, peer, "samples_per_s")
                row["date"] = machine_info()["date"]
                rows.append(row)
                print(
                    f"  {size} {precision}: {row['samples_per_s']:.1f} samples/s, "
                    f"{row['flops_per_s'] / 1e9:.1f} GFLOP/s ({row['mfu']:.0%} of matmul)"
                    + (f"; TRL {row['peer_per_s']:.1f}: {row['vs_peer']:.2f}x" if "vs_peer" in row else "")
                    + (
                        f"; BUSY MACHINE: others used {row['other_load']:.1f} cores"
                        if row["other_load"] > BUSY
                        else ""
                    )
                )

    shown = [{**r, "GFLOP/s": r["flops_per_s"] / 1e9, "of matmul": f"{r['mfu']:.0%}"} for r in rows]
    print()
    print(
        table(
            shown,
            [
                "size",
                "precision",
                "step_ms",
                "samples_per_s",
                "tokens_per_s",
                "GFLOP/s",
                "of matmul",
                "cpu_s",
                "peer_per_s",
                "vs_peer",
                "peer_cpu_s",
                "vs_peer_cpu",
                "other_load",
                "peer_load",
            ],
        )
    )
    path = write_results(
        "sft_quick" if args.quick else "sft",
        {
            "benchmark": "sft",
            "machine": info,
            "matmul_flops_per_s": rates,
            "setup": {
                "batch_size": BATCH,
                "prompt_tokens": PROMPT_TOKENS,
                "response_tokens": RESPONSE_TOKENS,
                "warmup_steps": warmup,
                "timed_steps": steps,
                "flops": (
                    "6 x flop_params x tokens (all positions); flop_params: params less the position "
                    "embeddings (the tied token embedding is the LM head matmul)"
                ),
                "samples_per_s": "batch / median step time; samples_per_s_mean: timed steps / total time",
                "other_load": "mean cores used by other processes during the timed steps",
                **SETUP,
            },
            "rows": rows,
        },
        update=["size", "precision"] if args.update else None,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
