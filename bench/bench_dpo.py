"""DPO training throughput through the real recipe: `rlhf.recipes.dpo.train`.

Each row trains a tiny GPT-2 policy (1m or 10m parameters) with the sigmoid DPO loss on generated
pair records, batch 8 pairs, every sequence exactly 32 prompt + 32 response tokens, reference
log-probs precomputed (the default). Steps after a warmup are timed with the recipe's
``callbacks`` hook, so collation, the one chosen+rejected forward, the loss, backward, clipping,
the optimizer and logging are in the time; loading, tokenizing, the reference pass and the final
save are not. The reference pass is a no-grad forward over the data, done once before training;
it is timed separately (``reference_s``) and ``pairs_per_s_with_reference`` charges each pair its
share of it, for comparison with a trainer that runs the reference on every step.

Achieved FLOP/s = 6 x parameters x tokens / s, counting the work the step really does: with
``dpo.share_prompt`` (the default) a pair is one row of 32 + 32 + 32 = 96 tokens through the
transformer body, and the LM head (the tied embedding) runs on the 65 positions that predict
response tokens only (``logits_to_keep``). A recipe running two 64-token rows with the LM head on
every position would do 6 x (body x 128 + head x 128) for the same pair: ``effective_flops_per_s``
counts that, for comparison with such a trainer.

Rows: --sizes x --precisions x --attn (model.attn_implementation; on CPU in bf16 eager beats
sdpa for these small heads) x --layouts (shared: dpo.share_prompt=true, the default; two_rows).

The peer, TRL 1.16's DPOTrainer (sigmoid loss, reference log-probs precomputed, one row for the
chosen and one for the rejected response), runs once a size, precision and attention kernel on
the same checkpoint, pairs and batch in its own venv and process (bench/toy_peer.py; `make
bench-peers`); each row saves the ratio ``vs_peer`` (wall clock) and ``vs_peer_cpu`` (CPU seconds
a step). ``--no-peer`` skips it.

    .venv/bin/python bench/bench_dpo.py [--quick] [--wait-quiet 180] [--attn auto eager] \
        [--layouts shared two_rows] [--threads 1] [--no-peer]
"""

from __future__ import annotations

import itertools
import json
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
    flop_params,
    last_metric,
    machine_info,
    measure_quietly,
    n_params,
    peak,
    rankings,
    run_timed,
    start,
    table,
    write_jsonl,
    write_results,
)
from toy_peer import SETUP, add_peer_args, compare, run_peer

BATCH = 8
# ours at least this many times the peer's pairs/s
TARGET = {("1m", "fp32"): 2.0, ("10m", "bf16-autocast"): 1.5, ("10m", "bf16-weights"): 1.5}
# precision -> (model.dtype, train.mixed_precision, matmul dtype of the ceiling)
PRECISIONS = {
    "fp32": ("float32", "no", "fp32"),
    "bf16-autocast": ("float32", "bf16", "bf16"),
    "bf16-weights": ("bfloat16", "no", "bf16"),
}
# untimed and timed steps per row
STEPS = {"1m": (5, 30), "10m": (3, 15)}
QUICK_STEPS = (2, 4)


def flops_per_pair(model: Path, shared: bool) -> dict[str, int]:
    """Training FLOPs of one pair as run (one shared-prompt row, or two rows; the LM head on the
    scored positions only) and as two 64-token rows with the LM head everywhere."""
    cfg = json.loads((model / "config.json").read_text())
    head = cfg["vocab_size"] * cfg["n_embd"]
    total = flop_params(model, lm_head=True)
    if shared:
        tokens, scored = PROMPT_TOKENS + 2 * RESPONSE_TOKENS, 2 * RESPONSE_TOKENS + 1
    else:
        tokens, scored = 2 * (PROMPT_TOKENS + RESPONSE_TOKENS), 2 * (RESPONSE_TOKENS + 1)
    return {
        "row_tokens_per_pair": tokens,
        "flops_per_pair": 6 * ((total - head) * tokens + head * scored),
        "flops_per_pair_unshared": 6 * total * 2 * (PROMPT_TOKENS + RESPONSE_TOKENS),
    }


def bench_row(
    size: str, precision: str, attn: str, layout: str, warmup: int, steps: int, work: Path, verbose: bool
) -> dict:
    import time

    from rlhf.recipes import dpo, dpo_reference

    model, vocab = checkpoint(size)
    records = BATCH * (warmup + steps)  # one epoch: every step sees fresh pairs
    data = write_jsonl(work / f"pairs-{records}.jsonl", rankings(vocab, records, 2))
    dtype, mixed, _ = PRECISIONS[precision]
    cfg = configure(
        dpo.Config(),
        model,
        data,
        work / f"dpo-{size}-{precision}-{attn}-{layout}",
        warmup + steps,
        BATCH,
        mixed_precision=mixed,
        log_every=10,
    )
    cfg.model.dtype = dtype
    cfg.model.attn_implementation = attn
    cfg.dpo.share_prompt = layout == "shared"
    # time the reference pass (a no-grad forward over every pair, before step 1) by wrapping it
    spent, real = [], dpo_reference.all_logps

    def timed_all_logps(*a, **kw):
        t = time.perf_counter()
        out = real(*a, **kw)
        spent.append(time.perf_counter() - t)
        return out

    dpo_reference.all_logps = timed_all_logps
    try:
        timer = run_timed(dpo.train, cfg, warmup, verbose)
    finally:
        dpo_reference.all_logps = real
    reference_s = sum(spent)
    times = timer.step_times()
    # the median step: robust to a neighbour process stealing a core for a few steps
    pairs_per_s = BATCH / statistics.median(times)
    return {
        "size": size,
        "params": n_params(model),
        "flop_params": flop_params(model, lm_head=True),
        "layout": layout,
        **flops_per_pair(model, layout == "shared"),
        "precision": precision,
        "attn": attn,
        "steps": timer.steps,
        "step_ms": 1e3 * statistics.median(times),
        "step_ms_min": 1e3 * min(times),
        "step_ms_max": 1e3 * max(times),
        "pairs_per_s": pairs_per_s,
        "pairs_per_s_mean": timer.steps * BATCH / timer.seconds,
        "cpu_s": statistics.median(timer.cpu_step_times()),
        "reference_s": reference_s,
        "reference_pairs": records,
        "pairs_per_s_with_reference": 1 / (1 / pairs_per_s + reference_s / records),
        "tokens_per_s": pairs_per_s * flops_per_pair(model, layout == "shared")["row_tokens_per_pair"],
        "other_load": timer.other_load,
        # the recipe's own figure, last metrics.jsonl line: counted from before step 1
        "recipe_pairs_per_s": last_metric(Path(cfg.train.output_dir), "pairs_per_s"),
    }


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per row")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row")
    ap.add_argument("--sizes", nargs="+", default=["1m", "10m"], choices=["1m", "10m"])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument(
        "--attn",
        nargs="+",
        default=["auto"],
        choices=["auto", "sdpa", "eager"],
        help="model.attn_implementation of the rows (auto: transformers' default, sdpa)",
    )
    ap.add_argument(
        "--layouts",
        nargs="+",
        default=["shared"],
        choices=["shared", "two_rows"],
        help="dpo.share_prompt=true (one row per pair) or false (a row for chosen, one for rejected)",
    )
    add_peer_args(ap)
    args = ap.parse_args()

    info, rates = start(args)

    rows, peers = [], {}
    warmup, steps = QUICK_STEPS if args.quick else (None, None)
    grid = itertools.product(args.sizes, args.precisions, args.attn, args.layouts)
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp:
        for size, precision, attn, layout in grid:
            w = args.warmup if args.warmup is not None else (warmup or STEPS[size][0])
            n = args.steps if args.steps is not None else (steps or STEPS[size][1])
            row = measure_quietly(
                args.wait_quiet, bench_row, size, precision, attn, layout, w, n, Path(tmp), args.verbose
            )
            ceiling = peak(rates, PRECISIONS[precision][2])
            row["flops_per_s"] = row["flops_per_pair"] * row["pairs_per_s"]
            row["effective_flops_per_s"] = row["flops_per_pair_unshared"] * row["pairs_per_s"]
            row["matmul_flops_per_s"] = ceiling
            row["mfu"] = row["flops_per_s"] / ceiling
            if not args.no_peer:
                if (size, precision, attn) not in peers:  # the peer has one layout: once for both of ours
                    pairs = {"pairs": str(Path(tmp) / f"pairs-{BATCH * (w + n)}.jsonl")}  # our row's records
                    peers[size, precision, attn] = run_peer(
                        "dpo", precision, checkpoint(size)[0], pairs, Path(tmp), BATCH, w, n,
                        info["torch_threads"], attn=attn,
                    )  # fmt: skip
                compare(row, peers[size, precision, attn], "pairs_per_s")
            if (size, precision) in TARGET:
                row["target_vs_peer"] = TARGET[size, precision]
            row["date"] = machine_info()["date"]
            rows.append(row)
            busy = row["other_load"] > BUSY
            print(
                f"  {size} {precision} attn={attn} {layout}: {row['pairs_per_s']:.1f} pairs/s "
                f"({row['pairs_per_s_with_reference']:.1f} with the reference pass), "
                f"{row['flops_per_s'] / 1e9:.1f} GFLOP/s ({row['mfu']:.0%} of matmul)"
                + (f"; TRL {row['peer_per_s']:.1f}: {row['vs_peer']:.2f}x" if "vs_peer" in row else "")
                + (f"; BUSY MACHINE: others used {row['other_load']:.1f} cores" if busy else "")
            )

    shown = [{**r, "GFLOP/s": r["flops_per_s"] / 1e9, "of matmul": f"{r['mfu']:.0%}"} for r in rows]
    print()
    print(
        table(
            shown,
            [
                "size",
                "precision",
                "attn",
                "layout",
                "step_ms",
                "pairs_per_s",
                "pairs_per_s_with_reference",
                "GFLOP/s",
                "of matmul",
                "cpu_s",
                "peer_per_s",
                "vs_peer",
                "target_vs_peer",
                "peer_cpu_s",
                "vs_peer_cpu",
                "other_load",
                "peer_load",
            ],
        )
    )
    path = write_results(
        "dpo_quick" if args.quick else "dpo",
        {
            "benchmark": "dpo",
            "machine": info,
            "matmul_flops_per_s": rates,
            "setup": {
                "batch_size": f"{BATCH} pairs (2 x {BATCH} sequences in one forward)",
                "prompt_tokens": PROMPT_TOKENS,
                "response_tokens": RESPONSE_TOKENS,
                "loss": "sigmoid (DPO), dpo.reference=precompute",
                "steps": "per row in rows[].steps, after the warmup of STEPS in the script",
                "flops": (
                    "flops_per_pair = 6 x (body params x 96 row tokens + LM head params x 65 scored "
                    "positions): the work done with one shared-prompt row per pair; flops_per_pair_unshared "
                    "= 6 x flop_params x 128 (two 64-token rows, LM head everywhere), the work of an "
                    "unshared trainer; body: flop_params less the tied LM head (vocab x d)"
                ),
                "tokens_per_s": "row tokens (prompt + chosen + rejected = 96 per pair) per second",
                "pairs_per_s": "batch / median step time; pairs_per_s_mean: over the total time",
                "pairs_per_s_with_reference": (
                    "1 / (1 / pairs_per_s + reference_s / reference_pairs): the precomputed reference pass "
                    "charged to each pair"
                ),
                "other_load": "mean cores used by other processes during the timed steps",
                **SETUP,
            },
            "rows": rows,
        },
        update=["size", "precision", "attn", "layout"] if args.update else None,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
