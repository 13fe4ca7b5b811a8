"""Memory per process of `rlhf ppo` under each engine, on 1 and 2 CPU processes (gloo).

Each case is a real PPO run (2 steps) of a GPT-2 launched with `accelerate launch` and the
project's configs/accelerate/*.yaml (tests/recipes/cpu_engines.py switches accelerate's CPU state
into FSDP2 or DeepSpeed ZeRO-2/ZeRO-3). Between the backward and the optimizer step of the last step, every
process counts what it stores (rlhf.recipes.memory): parameters of every model (policy, critic,
reference, the rollout engine's copy), gradients and optimizer state of the trained ones.

    python bench/bench_memory.py            # prints a table, writes bench/results/memory.json

The figure of merit: trained + frozen parameters and optimizer state per process on 2
processes, as a share of 1 process's. Sharded they halve; the rollout copy stays whole.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = [  # (engine, algo, processes)
    ("ddp", "ppo", 1),
    ("ddp", "ppo", 2),
    ("zero2", "ppo", 1),
    ("zero2", "ppo", 2),
    ("fsdp2", "ppo", 1),
    ("fsdp2", "ppo", 2),
    ("zero3", "ppo", 1),
    ("zero3", "ppo", 2),
]


def probe(out_path: str, args: list[str]) -> None:
    """In each launched process: run PPO, counting bytes at the last optimizer step."""
    sys.path.insert(0, str(REPO))
    from tests.recipes.cpu_engines import install

    install()
    from rlhf.config import load_config
    from rlhf.recipes import memory, ppo, ppo_models, rl_sharding

    seen: dict = {}
    build, step, copy_init = (
        ppo_models.build_models,
        ppo_models.optimizer_step,
        rl_sharding.RolloutCopy.__init__,
    )

    def build_models(cfg, tokenizer, accelerator, critic, scorers, opt_steps):
        seen["models"] = build(cfg, tokenizer, accelerator, critic, scorers, opt_steps)
        seen["accelerator"] = accelerator
        return seen["models"]

    def optimizer_step(accelerator, model, optimizer, *rest):
        m = seen["models"]
        role = "policy" if model is m.policy else "critic"
        seen[f"{role}_grad"] = memory.gradient_bytes(model, optimizer)
        return step(accelerator, model, optimizer, *rest)

    def rollout_init(self, accelerator, policy):
        copy_init(self, accelerator, policy)
        seen["rollout"] = self

    ppo_models.build_models = build_models
    ppo.build_models = build_models
    ppo_models.optimizer_step = optimizer_step
    rl_sharding.RolloutCopy.__init__ = rollout_init
    ppo.train(load_config(ppo.Config, None, args))
    m, acc = seen["models"], seen["accelerator"]
    rollout = seen["rollout"]
    figures = {
        "policy_params": memory.parameter_bytes(m.policy),
        "policy_grads": seen.get("policy_grad", 0),
        "policy_optimizer": memory.optimizer_bytes(m.optimizer),
        "critic_params": memory.parameter_bytes(m.critic),
        "critic_grads": seen.get("critic_grad", 0),
        "critic_optimizer": memory.optimizer_bytes(m.c_optimizer),
        "reference_params": memory.parameter_bytes(m.ref),
        "rollout_copy_params": memory.parameter_bytes(rollout.model) if rollout.sharded else 0,
    }
    Path(f"{out_path}.rank{acc.process_index}").write_text(json.dumps(figures))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(directory: Path) -> Path:
    from rlhf.models.tiny import make_tiny_checkpoint

    sys.path.insert(0, str(REPO))
    from tests.recipes.helpers import corpus

    # a GPT-2 of 4 layers x 128 wide (about 0.8M parameters with this vocabulary)
    return make_tiny_checkpoint(directory, corpus(), size="1m", vocab_size=300)


def run_case(engine: str, algo: str, procs: int, model: Path, prompts: Path, tmp: Path) -> dict:
    out = tmp / f"{engine}-{algo}-{procs}"
    args = [
        f"model.path={model}", f"data.train={prompts}", f"train.output_dir={out}",
        "rewards.function=tests.recipes.reward_fns:digits", f"algo.name={algo}",
        "train.batch_size=2", "train.max_steps=2", "rollout.max_new_tokens=4", "rollout.samples_per_prompt=2",
    ]  # fmt: skip
    if algo == "ppo":
        args.append("critic.init=policy")
    launch = (
        (["--multi_gpu"] if procs > 1 else [])
        if engine == "ddp"
        else ["--config_file", str(REPO / "configs/accelerate" / f"{engine}.yaml")]
    )
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "--num_processes", str(procs),
        "--main_process_port", str(free_port()), str(Path(__file__).resolve()),
        "--probe", str(out) + ".json", *args,
    ]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} {algo} x{procs} failed:\n{done.stderr[-3000:]}")
    return json.loads(Path(f"{out}.json.rank0").read_text())


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sys.path.insert(0, str(REPO))
        from tests.recipes.helpers import question, write_jsonl

        model = tiny_model(tmp / "model")
        prompts = write_jsonl(
            tmp / "prompts.jsonl", [{"prompt": question(a, b)} for a in range(8) for b in range(8)]
        )
        for engine, algo, procs in CASES:
            figures = run_case(engine, algo, procs, model, prompts, tmp)
            results.append({"engine": engine, "algo": algo, "processes": procs, **figures})
            print(engine, algo, procs, figures, flush=True)
    print()
    print(
        "| engine | algo | processes | params (policy+critic+ref) | grads | optimizer | "
        "params+optimizer | rollout copy | 2-proc / 1-proc |"
    )
    print("|" + "---|" * 9)
    base = {}
    for r in results:
        params = r["policy_params"] + r["critic_params"] + r["reference_params"]
        grads = r["policy_grads"] + r["critic_grads"]
        opt = r["policy_optimizer"] + r["critic_optimizer"]
        key = (r["engine"], r["algo"])
        if r["processes"] == 1:
            base[key] = params + opt
        share = (params + opt) / base[key] if key in base else float("nan")
        r["params_plus_optimizer"], r["share_of_1_process"] = params + opt, share
        mb = [x / 1e6 for x in (params, grads, opt, params + opt, r["rollout_copy_params"])]
        cells = [r["engine"], r["algo"], str(r["processes"]), *(f"{x:.3f} MB" for x in mb), f"{share:.2f}"]
        print("| " + " | ".join(cells) + " |")
    out = REPO / "bench" / "results" / "memory.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2], sys.argv[3:])
    else:
        main()
