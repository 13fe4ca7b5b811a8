"""FSDP2 and DeepSpeed ZeRO-3 on 2 CPU processes over gloo, launched with the project's own
accelerate configs (configs/accelerate/*.yaml) through tests/recipes/cpu_engines.py, which
switches accelerate's CPU state into the engine (accelerate enters neither without a GPU).

One launch per engine runs every case in turn (a launch costs tens of seconds of start-up):
sft, reward, dpo, each run resumed from its step-4 checkpoint, the RL runs of RL (each resumed
from its step-2 checkpoint, and on DDP in the same launch), and a save that skips the gather.
The reference is one process with the same global batch (4), in-process: test_distributed.py
shows DDP on 2 processes ends there too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import torch

from rlhf import cli

from .helpers import REPO, VENV_BIN, assert_same_weights, load_weights, read_metrics, reward_overrides
from .test_distributed import free_port

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

ENGINES = ["fsdp2", "zero3"]
RL = {"fsdp2": ["ppo"], "zero3": ["grpo", "ppo"]}
"""the RL runs of each engine's launch compared with DDP: PPO with a separate critic
(critic.init=policy; under DeepSpeed the critic is a second engine through a second Accelerator)
and, under ZeRO-3, GRPO"""


def rl_args(model, prompts, out, algo: str) -> list[str]:
    algo_args = ["critic.init=policy", "critic.lr=1e-2", "algo.minibatches=2"] if algo == "ppo" else []
    return [
        "ppo", f"model.path={model}", f"data.train={prompts}", f"train.output_dir={out}",
        "rewards.function=tests.recipes.reward_fns:digits", f"algo.name={algo}", *algo_args,
        "train.batch_size=2", "train.max_steps=4", "train.save_every=2", "train.keep_checkpoints=5",
        "rollout.max_new_tokens=6", "rollout.samples_per_prompt=2", "train.log_every=1", "train.lr=1e-3",
    ]  # fmt: skip


def run_args(verb: str, model, train, out, batch_size: int) -> list[str]:
    extra = ["dpo.reference=precompute"] if verb == "dpo" else []
    return [
        verb,
        *reward_overrides(model, train, out, "train.max_steps=6", "train.lr=1e-3", "train.save_every=2",
                          "train.keep_checkpoints=5", f"train.batch_size={batch_size}", *extra),
    ]  # fmt: skip


def launch_plan(engine: str, plan: list[dict], tmp) -> list[list[dict]]:
    """Run ``plan`` (see cpu_engines.run_plan) on 2 processes under ``engine``; each process's outcomes."""
    plan_path = tmp / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp / "hf_home"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        str(VENV_BIN / "accelerate"), "launch",
        "--config_file", str(REPO / "configs" / "accelerate" / f"{engine}.yaml"),
        "--num_processes", "2", "--main_process_port", str(free_port()),
        "-m", "tests.recipes.cpu_engines", "--plan", str(plan_path),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{engine} launch did not finish in 400 s:\n" + out[-3000:] + err[-3000:])
    assert proc.returncode == 0, out[-3000:] + err[-5000:]
    return [json.loads((tmp / f"plan.results.rank{r}").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def single(nano_model, data_dir, tmp_path_factory):
    """The 1-process runs, global batch 4."""
    out = tmp_path_factory.mktemp("single")
    for verb, data in (("sft", "demos.jsonl"), ("reward", "rankings.jsonl"), ("dpo", "rankings.jsonl")):
        assert cli.main(run_args(verb, nano_model, data_dir / data, out / verb, 4)) == 0
    return out


@pytest.fixture(scope="module", params=ENGINES)
def sharded(request, nano_model, data_dir, prompts, tmp_path_factory):
    engine = request.param
    out = tmp_path_factory.mktemp(engine)
    plan = []
    for verb, data in (("sft", "demos.jsonl"), ("reward", "rankings.jsonl"), ("dpo", "rankings.jsonl")):
        plan.append({"args": run_args(verb, nano_model, data_dir / data, out / verb, 2)})
        if verb != "reward":
            plan.append({"resume_copy": [str(out / verb), str(out / f"{verb}_resumed"), 4]})
            plan.append({"args": run_args(verb, nano_model, data_dir / data, out / f"{verb}_resumed", 2)})
    for rl in RL[engine]:
        plan.append({"args": rl_args(nano_model, prompts, out / rl, rl)})
        plan.append({"resume_copy": [str(out / rl), str(out / f"{rl}_resumed"), 2]})
        plan.append({"args": rl_args(nano_model, prompts, out / f"{rl}_resumed", rl)})
        plan.append({"args": rl_args(nano_model, prompts, out / f"{rl}_ddp", rl), "ddp": True})
    plan.append(
        {
            "args": run_args("sft", nano_model, data_dir / "demos.jsonl", out / "broken", 2),
            "break_gather": True,
        }
    )
    return engine, out, launch_plan(engine, plan, out)


@pytest.mark.parametrize("verb", ["sft", "reward", "dpo"])
def test_sharded_run_ends_with_the_weights_of_ddp(sharded, single, verb):
    engine, out, _ = sharded
    m1, m2 = read_metrics(single / verb), read_metrics(out / verb)
    assert m2[0]["epoch"] == pytest.approx(m1[0]["epoch"])  # two processes of batch 2: the same global batch
    for a, b in zip(m1, m2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (engine, verb, a, b)
    assert_same_weights(load_weights(single / verb / "final"), load_weights(out / verb / "final"), atol=1e-4)


@pytest.mark.parametrize("verb", ["sft", "dpo"])
def test_sharded_final_loads_whole_with_auto_model(sharded, verb):
    from transformers import AutoModelForCausalLM

    _, out, _ = sharded
    model, info = AutoModelForCausalLM.from_pretrained(out / verb / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    written = load_weights(out / verb / "final")
    for name, p in model.named_parameters():
        if name in written:
            torch.testing.assert_close(p.detach(), written[name])


@pytest.mark.parametrize("verb", ["sft", "dpo"])
def test_sharded_resume_is_exact(sharded, verb):
    _, out, _ = sharded
    assert_same_weights(
        load_weights(out / verb / "final"), load_weights(out / f"{verb}_resumed" / "final"), atol=1e-6
    )
    m, r = read_metrics(out / verb), read_metrics(out / f"{verb}_resumed")
    assert [x["step"] for x in r] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(m[4:], r[4:]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)


def test_a_save_that_skips_the_gather_fails_on_every_process(sharded):
    """What the engines wrote before saves were gathered (ZeRO-3: empty tensors; FSDP2: each
    process's rows) is refused: SaveError on both processes, and no final/ written."""
    engine, out, outcomes = sharded
    for per_process in outcomes:
        *good, broken = per_process
        assert all(o["ok"] for o in good), [o for o in good if not o["ok"]]
        assert not broken["ok"] and "does not hold a whole model" in broken["error"]
        assert "has shape" in broken["error"] and "the config says" in broken["error"]
    assert not (out / "broken" / "final").exists()


def rl_runs(sharded, rl: str):
    engine, out, _ = sharded
    if rl not in RL[engine]:
        pytest.skip(f"{rl} is not in the {engine} launch")
    return engine, out


@pytest.mark.parametrize("rl", ["ppo", "grpo"])
def test_sharded_rl_run_ends_with_the_weights_of_ddp(sharded, rl):
    """The same 2-process run on DDP in the same launch: the same rollouts (each process samples
    with its own seed), the same updates. The reference and the critic are sharded too (under
    ZeRO-3 the critic's new value head is drawn whole, from the same seed as under DDP); the
    rollout engine reads the gathered copy."""
    engine, out = rl_runs(sharded, rl)
    m1, m2 = read_metrics(out / f"{rl}_ddp"), read_metrics(out / rl)
    assert [r["step"] for r in m2] == [1, 2, 3, 4]
    for a, b in zip(m1, m2, strict=True):
        for key in ("score_raw", "kl", "policy_loss", "value_loss", "explained_variance"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (engine, key, a, b)
    assert_same_weights(
        load_weights(out / f"{rl}_ddp" / "final"), load_weights(out / rl / "final"), atol=1e-4
    )


@pytest.mark.parametrize("rl", ["ppo", "grpo"])
def test_sharded_rl_resume_is_exact_and_loads(sharded, rl):
    from transformers import AutoModelForCausalLM

    engine, out = rl_runs(sharded, rl)
    assert_same_weights(
        load_weights(out / rl / "final"), load_weights(out / f"{rl}_resumed" / "final"), atol=1e-6
    )
    for a, b in zip(read_metrics(out / rl), read_metrics(out / f"{rl}_resumed"), strict=True):
        assert b["score_raw"] == pytest.approx(a["score_raw"], abs=1e-6)
    _, info = AutoModelForCausalLM.from_pretrained(out / rl / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]


def test_zero3_ppo_checkpoints_and_resumes_its_critic(sharded):
    """Policy and critic each on their own DeepSpeed engine (the critic's through a second
    Accelerator), both in the checkpoint: the resumed run's critic gives the uninterrupted one's values."""
    _, out = rl_runs(sharded, "ppo")
    if sharded[0] != "zero3":
        pytest.skip("DeepSpeed only: the critic's own engine and checkpoint directory")
    for a, b in zip(read_metrics(out / "ppo"), read_metrics(out / "ppo_resumed"), strict=True):
        for key in ("value_loss", "explained_variance"):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert (out / "ppo_resumed" / "checkpoints" / "step-2" / "critic").is_dir()
