"""Reward-model training throughput through the real recipe: `rlhf.recipes.reward.train`.

Each row trains a tiny GPT-2 reward model (1m or 10m parameters, scalar head) on generated
preference records, batch 16 records, every sequence exactly 32 prompt + 32 response tokens.
K=2 rows are pair records (one comparison each); K=4 rows are rankings of 4 responses, whose
C(4,2) = 6 comparisons share the 4 scored sequences. Steps after a warmup are timed with the
recipe's ``callbacks`` hook, so collation, the Bradley-Terry loss, clipping, the optimizer and
logging are in the time; loading, tokenizing, the reward statistics and the final save are not.

Achieved FLOP/s = 6 x parameters x tokens / s over the tokens the model reads (a record's prompt
once for its K responses when the recipe packs them, reward.share_prompt; once per response
otherwise), counting the parameters that do matmul work (no LM head, no embedding lookups:
common.flop_params).

Each K=2 row also runs the peer, TRL 1.16's RewardTrainer, on the same transformer (with a seeded
score head), pairs, batch and precision in its own venv and process (bench/toy_peer.py; `make
bench-peers`), and saves the ratio ``vs_peer`` (wall clock) and ``vs_peer_cpu`` (CPU seconds a
step); ``--no-peer`` skips it. TRL's trainer takes pairs only, so the K=4 rows have no peer.

    .venv/bin/python bench/bench_reward.py [--quick] [--threads 1] [--no-peer]
"""

from __future__ import annotations

import statistics
import tempfile
from math import comb
from pathlib import Path

from common import (
    BUSY,
    PROMPT_TOKENS,
    RESPONSE_TOKENS,
    bench_parser,
    checkpoint,
    configure,
    flop_params,
    last_metric,
    machine_info,
    measure_quietly,
    n_params,
    peak,
    rankings,
    reward_checkpoint,
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
# (size, precision, K): pair rows in every precision, one ranking row per size
ROWS = [
    (size, precision, k)
    for size in ("1m", "10m")
    for precision, k in (("fp32", 2), ("bf16-autocast", 2), ("bf16-weights", 2), ("fp32", 4))
]
# untimed and timed steps per row; the 10m rows take seconds a step
STEPS = {"1m": (5, 30), "10m": (3, 12)}
QUICK_STEPS = (2, 4)


def bench_row(size: str, precision: str, k: int, warmup: int, steps: int, work: Path, verbose: bool) -> dict:
    from rlhf.recipes.reward import Config, train

    model, vocab = checkpoint(size)
    records = BATCH * (warmup + steps)  # one epoch: every step sees fresh records
    data = write_jsonl(work / f"prefs-k{k}.jsonl", rankings(vocab, records, k))
    dtype, mixed, _ = PRECISIONS[precision]
    cfg = configure(
        Config(),
        model,
        data,
        work / f"reward-{size}-{precision}-k{k}",
        warmup + steps,
        BATCH,
        mixed_precision=mixed,
        log_every=10,
    )
    cfg.model.dtype = dtype
    cfg.reward.stats_records = BATCH  # post-training statistics: not timed, kept short
    timer = run_timed(train, cfg, warmup, verbose)
    # with reward.share_prompt (the default) a record's prompt is read once for its K responses
    # whenever that costs fewer FLOPs (it is decided per batch; these batches are all alike)
    from transformers import AutoConfig

    from rlhf.rollout.groups import packing_pays

    hidden = AutoConfig.from_pretrained(model).hidden_size
    shared = cfg.reward.share_prompt and packing_pays(
        [[0] * PROMPT_TOKENS], [[[0] * RESPONSE_TOKENS] * k], hidden
    )
    read = PROMPT_TOKENS + k * RESPONSE_TOKENS if shared else k * (PROMPT_TOKENS + RESPONSE_TOKENS)
    times = timer.step_times()
    # the median step: robust to a neighbour process stealing a core for a few steps
    records_per_s = BATCH / statistics.median(times)
    return {
        "size": size,
        "params": n_params(model),
        "flop_params": flop_params(model, lm_head=False),
        "precision": precision,
        "K": k,
        "steps": timer.steps,
        "step_ms": 1e3 * statistics.median(times),
        "step_ms_min": 1e3 * min(times),
        "step_ms_max": 1e3 * max(times),
        "records_per_s": records_per_s,
        "pairs_per_s": records_per_s * comb(k, 2),
        "pairs_per_s_mean": timer.steps * BATCH * comb(k, 2) / timer.seconds,
        "cpu_s": statistics.median(timer.cpu_step_times()),
        "sequences_per_s": records_per_s * k,
        "share_prompt": shared,
        "tokens_per_s": records_per_s * read,  # the tokens the model reads
        "other_load": timer.other_load,
        # the recipe's own figure, last metrics.jsonl line: counted from before step 1, so it
        # includes the first (slow) steps
        "recipe_pairs_per_s": last_metric(Path(cfg.train.output_dir), "pairs_per_s"),
    }


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per row")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row")
    ap.add_argument("--sizes", nargs="+", default=["1m", "10m"], choices=["1m", "10m"])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--ks", nargs="+", type=int, default=[2, 4], help="which K rows to run")
    add_peer_args(ap)
    args = ap.parse_args()

    info, rates = start(args)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reward-") as tmp:
        for size, precision, k in ROWS:
            if size not in args.sizes or precision not in args.precisions or k not in args.ks:
                continue
            warmup, steps = QUICK_STEPS if args.quick else STEPS[size]
            warmup = args.warmup if args.warmup is not None else warmup
            steps = args.steps if args.steps is not None else steps
            row = measure_quietly(
                args.wait_quiet, bench_row, size, precision, k, warmup, steps, Path(tmp), args.verbose
            )
            ceiling = peak(rates, PRECISIONS[precision][2])
            row["flops_per_s"] = 6 * row["flop_params"] * row["tokens_per_s"]
            row["matmul_flops_per_s"] = ceiling
            row["mfu"] = row["flops_per_s"] / ceiling
            if k == 2 and not args.no_peer:
                pairs = {"pairs": str(Path(tmp) / "prefs-k2.jsonl")}  # the records our row trained on
                model, rm = checkpoint(size)[0], reward_checkpoint(size)
                peer = run_peer(
                    "reward", precision, model, pairs, Path(tmp), BATCH, warmup, steps,
                    info["torch_threads"], reward_model=rm,
                )  # fmt: skip
                compare(row, peer, "pairs_per_s")
            row["date"] = machine_info()["date"]
            rows.append(row)
            print(
                f"  {size} {precision} K={k}: {row['pairs_per_s']:.1f} pairs/s, "
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
                "K",
                "step_ms",
                "records_per_s",
                "pairs_per_s",
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
        "reward_quick" if args.quick else "reward",
        {
            "benchmark": "reward",
            "machine": info,
            "matmul_flops_per_s": rates,
            "setup": {
                "batch_size": BATCH,
                "prompt_tokens": PROMPT_TOKENS,
                "response_tokens": RESPONSE_TOKENS,
                "steps": "per row in rows[].steps, after the warmup of STEPS in the script",
                "pairs": "comparisons: C(K,2) per record",
                "flops": (
                    "6 x flop_params x the tokens read (a record's prompt once for its K responses when "
                    "packed: share_prompt); flop_params: params less the embeddings (no LM head in a "
                    "reward model), plus the score head"
                ),
                "records_per_s": "batch / median step time; pairs_per_s_mean: over the total time",
                "other_load": "mean cores used by other processes during the timed steps",
                **SETUP,
            },
            "rows": rows,
        },
        update=["size", "precision", "K"] if args.update else None,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
