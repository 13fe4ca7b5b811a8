"""RL throughput through the real recipe: `rlhf.recipes.ppo.train` (PPO and GRPO).

Setup of the issue: the ~10M tiny GPT-2 as policy, reference, reward model and critic (the reward
model and critic are the same checkpoint with a seeded scalar head, bench/common.py: reward_checkpoint);
16 rollouts per update, 32-token prompts, exactly 32-token responses (EOS masked until then), 1 PPO
epoch of 1 minibatch. GRPO rows: 4 prompts x 4 samples. Steps after a warmup are timed with the recipe's
``callbacks`` hook, so generation, scoring, the reference/critic forwards, advantages, the update, the
engine's weight sync and logging are all in the time.

FLOPs per update (6ND for training, 2ND for a forward, D = 64 tokens a rollout):
    generation 2 N_lm D, reward 2 N_rm D, reference log-probs 2 N_lm D, policy update 6 N_lm D,
    critic update 6 N_v D (GRPO: no critic; PPO rows with ``--critic shared``, critic.init=shared: a
    value head on the policy's transformer, so no critic pass beyond the policy's). With one epoch of
    one minibatch the sampling policy's log-probs and the critic's values come from the update's own
    forward (recipes/ppo.py), so they cost nothing extra. GRPO with rollout.share_prompt (the default)
    runs each prompt once for its 4 samples after generation: D = 32 / 4 + 32 = 40 tokens a rollout
    there. Rows with reference=False (``--reference off``: algo.reference=false, kl_coef=0) have no
    reference pass.

The peer runs once an algorithm, precision, attention kernel and reference setting, on the same
checkpoints, prompts, batch and lengths, in its own venv and process (bench/toy_peer.py; `make
bench-peers`): TRL 1.12's PPOTrainer (one epoch of one minibatch, a value model from the reward
model, no stop token) beside our PPO rows with critic.init=reward, TRL 1.16's GRPOTrainer (4
prompts x 4 completions, min_new_tokens = max, beta = our algo.kl_coef with the reference, 0
without) beside our GRPO rows. Each of those rows saves ``vs_peer`` (wall clock) and
``vs_peer_cpu`` (CPU seconds a step); ``--no-peer`` skips the peer.

    .venv/bin/python bench/bench_ppo.py [--quick] [--repeats 2] [--threads 1] [--no-peer]

This host's speed drifts by up to 20-30% over minutes; ``--repeats`` passes over all rows in turn
and keeps each row's fastest pass, so a slow spell does not land on one side of a comparison.
"""

from __future__ import annotations

import itertools
import random
import statistics
import tempfile
from pathlib import Path

from common import (
    BUSY,
    PROMPT_TOKENS,
    bench_parser,
    checkpoint,
    flop_params,
    machine_info,
    measure_quietly,
    peak,
    reward_checkpoint,
    run_timed,
    sentence,
    start,
    table,
    write_jsonl,
    write_results,
)
from toy_peer import SETUP, add_peer_args, compare, run_peer

RESPONSE = 32
# rollouts/s ours should reach
TARGET = {("ppo", "bf16"): 20.0}
# precision -> (train.mixed_precision, rollout.dtype, matmul dtype of the ceiling)
PRECISIONS = {"fp32": ("no", "auto", "fp32"), "bf16": ("bf16", "bfloat16", "bf16")}
SHAPES = {"ppo": (16, 1), "grpo": (4, 4)}  # prompts x samples per update
STEPS = (3, 10)
QUICK_STEPS = (1, 3)


def prompts_file(path: Path, n: int) -> Path:
    """``n`` prompt records of PROMPT_TOKENS one-token words (seeded: the same for both sides)."""
    _, vocab = checkpoint("10m")
    rng = random.Random(0)
    return write_jsonl(path, [{"prompt": sentence(vocab, PROMPT_TOKENS, rng)} for _ in range(n)])


def peer_row(algo: str, precision: str, attn: str, reference: bool, warmup: int, steps: int, work: Path,
             threads: int, verbose: bool) -> dict:  # fmt: skip
    """TRL's row beside ours: PPOTrainer (TRL 1.12) or GRPOTrainer (TRL 1.16), bench/toy_peer.py."""
    from rlhf.recipes.ppo import Config

    prompts, samples = SHAPES[algo]
    data = prompts_file(work / f"peer-prompts-{algo}.jsonl", prompts * (warmup + steps + 1))
    beta = Config().algo.kl_coef if algo == "grpo" and reference else 0.0  # TRL's PPO: its own kl_coef
    return run_peer(
        algo, precision, checkpoint("10m")[0], {"prompts": str(data)}, work, prompts, warmup, steps, threads,
        samples=samples, attn=attn, reward_model=reward_checkpoint("10m"), beta=beta, verbose=verbose,
    )  # fmt: skip


def bench_row(
    algo: str,
    precision: str,
    engine: str,
    attn: str,
    share: bool,
    reference: bool,
    critic: str,
    warmup: int,
    steps: int,
    work: Path,
    verbose: bool,
) -> dict:
    from rlhf.config import load_config
    from rlhf.recipes.ppo import Config, train

    model, _ = checkpoint("10m")
    prompts_per_step, samples = SHAPES[algo]
    data = prompts_file(work / "prompts.jsonl", prompts_per_step * (warmup + steps + 1))
    mixed, rollout_dtype, _ = PRECISIONS[precision]
    cfg = load_config(
        Config,
        None,
        [
            f"model.path={model}",
            f"data.train={data}",
            f"rewards.model={reward_checkpoint('10m')}",
            "rewards.normalize=false",
            f"train.output_dir={work / f'{algo}-{precision}-{engine}-{attn}-{share}-{reference}-{critic}'}",
            f"model.attn_implementation={attn}",
            f"train.max_steps={warmup + steps}",
            f"train.batch_size={prompts_per_step}",
            f"train.mixed_precision={mixed}",
            "train.resume=false",
            "train.log_every=1",
            f"algo.name={algo}",
            f"rollout.samples_per_prompt={samples}",
            f"rollout.max_new_tokens={RESPONSE}",
            f"rollout.min_new_tokens={RESPONSE}",
            f"rollout.engine={engine}",
            f"rollout.dtype={rollout_dtype}",
            "rollout.samples_every=0",
            f"rollout.share_prompt={str(share).lower()}",
            *([] if reference else ["algo.reference=false", "algo.kl_coef=0"]),
            f"critic.init={critic}",
        ],
    )
    timer = run_timed(train, cfg, warmup, verbose)
    step = statistics.median(timer.step_times())
    rollouts = prompts_per_step * samples
    import json

    metrics = [json.loads(x) for x in (Path(cfg.train.output_dir) / "metrics.jsonl").read_text().splitlines()]
    timed = metrics[warmup:]
    split = {k: statistics.median(m[k] for m in timed) for k in ("time_generate", "time_score", "time_train")}
    return {
        "algo": algo,
        "precision": precision,
        "engine": engine,
        "attn": attn,
        "share_prompt": share,
        "reference": reference,
        "critic": critic if algo == "ppo" else None,
        "rollouts_per_update": rollouts,
        "steps": timer.steps,
        "step_s": step,
        "rollouts_per_s": rollouts / step,
        "cpu_s": statistics.median(timer.cpu_step_times()),
        **{k.replace("time_", "") + "_s": v for k, v in split.items()},
        "generate_share": split["time_generate"] / step,
        "other_load": timer.other_load,
    }


def flops_per_update(algo: str, rollouts: int, share: bool, reference: bool, critic: str) -> float:
    model, _ = checkpoint("10m")
    n_lm, n_rm = flop_params(model, lm_head=True), flop_params(model, lm_head=False)
    samples = SHAPES[algo][1]
    d = PROMPT_TOKENS + RESPONSE  # tokens a rollout, as generated
    # forwarded after generation: with shared prompts a group's prompt runs once for its samples
    d_after = (PROMPT_TOKENS / samples + RESPONSE) if share else d
    after = (
        (2 if reference else 0) * n_lm
        + 6 * n_lm
        + 2 * n_rm
        + (6 * n_rm if algo == "ppo" and critic == "reward" else 0)
    )
    per_rollout = 2 * n_lm * d + after * d_after
    return per_rollout * rollouts


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per row")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row")
    ap.add_argument("--algos", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--engines", nargs="+", default=["kv_cache", "hf"], choices=["kv_cache", "hf"])
    ap.add_argument(
        "--attn",
        nargs="+",
        default=["eager"],
        help=(
            "model.attn_implementation of the rows (eager beats sdpa for these 32-wide heads on CPU; sdpa "
            "to compare)"
        ),
    )
    for flag, what in (
        (
            "--share-prompt",
            "rollout.share_prompt of the grpo rows (ppo samples one response a prompt: nothing to share)",
        ),
        (
            "--reference",
            "off: grpo rows also without a reference policy (algo.reference=false, kl_coef=0; ppo keeps it)",
        ),
    ):
        ap.add_argument(flag, nargs="+", default=["on"], choices=["on", "off"], help=what)
    ap.add_argument(
        "--critic",
        nargs="+",
        default=["reward"],
        choices=["reward", "shared"],
        help=(
            "critic.init of the ppo rows: reward (a copy of the reward model, the peer's setup) or shared "
            "(a value head on the policy)"
        ),
    )
    ap.add_argument(
        "--repeats", type=int, default=1, help="passes over all rows; each row keeps its fastest pass"
    )
    add_peer_args(ap)
    args = ap.parse_args()

    info, rates = start(args)
    warmup, steps = QUICK_STEPS if args.quick else STEPS
    warmup = args.warmup if args.warmup is not None else warmup
    steps = args.steps if args.steps is not None else steps

    configs = []
    for algo in args.algos:
        for precision in args.precisions:
            shares = sorted({s == "on" and SHAPES[algo][1] > 1 for s in args.share_prompt}, reverse=True)
            refs = sorted({r == "on" or algo == "ppo" for r in args.reference}, reverse=True)
            critics = args.critic if algo == "ppo" else ["reward"]  # grpo has no critic
            for engine, attn, share, ref, critic in itertools.product(
                args.engines, args.attn, shares, refs, critics
            ):
                configs.append((algo, precision, engine, attn, share, ref, critic))
    best: dict[tuple, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ppo-") as tmp:
        for rep in range(args.repeats):  # every row once a pass: a slow spell of the host hits all rows alike
            for config in configs:
                row = measure_quietly(
                    args.wait_quiet, bench_row, *config, warmup, steps, Path(tmp) / str(rep), args.verbose
                )
                row["date"] = machine_info()["date"]
                if config not in best or row["step_s"] < best[config]["step_s"]:
                    best[config] = row
                print(
                    f"  pass {rep + 1}: {' '.join(map(str, config))}: {row['rollouts_per_s']:.1f} rollouts/s"
                )
    rows, peers = [], {}
    for (algo, precision, engine, attn, share, ref, critic), row in best.items():
        flops = flops_per_update(algo, row["rollouts_per_update"], share, ref, critic)
        row["passes"] = args.repeats
        row["gflop_per_update"] = flops / 1e9
        row["flops_per_s"] = flops / row["step_s"]
        row["of_matmul"] = row["flops_per_s"] / peak(rates, PRECISIONS[precision][2])
        if not args.no_peer and critic == "reward":  # the peer trains a separate value model
            key = (algo, precision, attn, ref)
            if key not in peers:
                with tempfile.TemporaryDirectory(prefix="bench-ppo-peer-") as tmp:
                    peers[key] = peer_row(*key, warmup, steps, Path(tmp), info["torch_threads"], args.verbose)
            compare(row, peers[key], "rollouts_per_s")
        if (algo, precision) in TARGET:
            row["target"] = TARGET[(algo, precision)]
        rows.append(row)
        print(
            f"  {algo} {precision} {engine} {attn} share_prompt={share} reference={ref}"
            + (f" critic={critic}" if algo == "ppo" else "")
            + ": "
            f"{row['rollouts_per_s']:.1f} rollouts/s "
            f"(generate {row['generate_share']:.0%} of the step), {row['of_matmul']:.0%} of matmul"
            + (f"; TRL {row['peer_per_s']:.1f}: {row['vs_peer']:.2f}x" if "vs_peer" in row else "")
            + (
                f"; BUSY MACHINE: others used {row['other_load']:.1f} cores"
                if row["other_load"] > BUSY
                else ""
            )
        )
    print()
    print(
        table(
            rows,
            [
                "algo",
                "precision",
                "engine",
                "attn",
                "share_prompt",
                "reference",
                "critic",
                "step_s",
                "rollouts_per_s",
                "generate_s",
                "score_s",
                "train_s",
                "gflop_per_update",
                "of_matmul",
                "cpu_s",
                "peer_per_s",
                "vs_peer",
                "peer_cpu_s",
                "vs_peer_cpu",
                "target",
                "other_load",
                "peer_load",
            ],
        )
    )
    path = write_results(
        "ppo_quick" if args.quick else "ppo",
        {
            "benchmark": "ppo",
            "machine": info,
            "matmul_flops_per_s": rates,
            "setup": {
                "model": "tiny GPT-2 10m as policy, reference, reward model and critic",
                "ppo": (
                    "16 prompts x 1 sample, 1 epoch, 1 minibatch; critic: critic.init (reward: a copy of "
                    "the reward model; shared: a value head on the policy)"
                ),
                "grpo": "4 prompts x 4 samples, 1 epoch, 1 minibatch; share_prompt: rollout.share_prompt",
                "prompt_tokens": PROMPT_TOKENS,
                "response_tokens": RESPONSE,
                "flops": "see the module docstring",
                **SETUP,
            },
            "rows": rows,
        },
        ["algo", "precision", "engine", "attn", "share_prompt", "reference", "critic"]
        if args.update
        else None,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
