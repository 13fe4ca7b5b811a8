"""FSDP2, DeepSpeed ZeRO-2 and ZeRO-3 on 2 CPU processes over gloo, launched with the project's
own accelerate configs (configs/accelerate/*.yaml) through tests/recipes/cpu_engines.py, which
switches accelerate's CPU state into the engine (accelerate enters neither without a GPU).

One launch per engine runs every case in turn (a launch costs tens of seconds of start-up): sft,
reward and dpo, each resumed from its step-2 checkpoint; dpo with a frozen reference model, sft
with gradient accumulation and sft in bf16; every RL run of ``RL`` (each resumed from its step-2
checkpoint); under ZeRO-2 LoRA SFT and PPO; under FSDP2 and ZeRO-3 a save that skips the gather.
Run with -s to see each launch's seconds and each run's. The references:
for sft/reward/dpo one process with the same global batch (4), in-process (test_distributed.py
shows DDP on 2 processes ends there too); for the RL runs the same runs on DDP, 2 processes, run
once in the ZeRO-2 launch and shared by the engines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from rlhf import cli

from .helpers import (
    REPO,
    VENV_BIN,
    assert_same_weights,
    load_weights,
    question,
    read_metrics,
    reward_overrides,
    write_jsonl,
)
from .test_distributed import free_port

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

ENGINES = ["fsdp2", "zero2", "zero3"]
SHARDED = ("fsdp2", "zero3")
"""no process holds the whole model: a save that skips the gather writes a partial one"""
VERBS = ("sft", "reward", "dpo")

PPO = ["algo.name=ppo", "critic.lr=1e-2", "algo.minibatches=2"]
RL = {
    # a separate critic from the policy (under DeepSpeed a second engine, a second Accelerator)
    "ppo": [*PPO, "critic.init=policy"],
    # a value head on the policy (under DeepSpeed whole in every process, outside the engines),
    # with gradient accumulation inside the update and the PPO-ptx mix (several backwards a step)
    "ppo_shared": [*PPO, "critic.init=shared", "algo.micro_batch=1", "ptx.coef=0.5", "ptx.batch_size=2"],
    # the critic copied from the reward model, which scores (a sharded frozen model); held-out
    # evaluation on one prompt: one process gets it, the other none, and must still run as many
    # collective forwards
    "ppo_reward": [*PPO, "critic.init=reward"],
    "grpo": ["algo.name=grpo"],
    "rloo": ["algo.name=rloo"],
    "online_dpo": ["algo.name=online_dpo"],
}
"""the RL runs of every engine's launch, compared with the same runs on DDP"""
LORA = ["model.lora_r=4"]
BF16 = "train.mixed_precision=bf16"
KL = "sft.kl_coef=1.0"
"""SFT pulled toward its start: a frozen copy sharded for inference, or with LoRA the adapters off"""
STEPS, RESUME_FROM = 3, 2
"""every run trains STEPS steps with a checkpoint at RESUME_FROM; the resumed run does the rest"""


def rl_args(name: str, model, prompts, files: dict, out) -> list[str]:
    rewards = (
        [f"rewards.model={files['reward_model']}", f"data.eval={files['eval_prompts']}"]
        if name == "ppo_reward"
        else ["rewards.function=tests.recipes.reward_fns:digits"]
    )
    ptx = [f"ptx.data={files['demos']}"] if name == "ppo_shared" else []
    return [
        "ppo", f"model.path={model}", f"data.train={prompts}", f"train.output_dir={out}", *RL[name],
        *rewards, *ptx, "train.batch_size=2", f"train.max_steps={STEPS}", f"train.save_every={RESUME_FROM}",
        "train.keep_checkpoints=5", "rollout.max_new_tokens=6", "rollout.samples_per_prompt=2",
        "train.log_every=1", "train.lr=1e-3",
    ]  # fmt: skip


def run_args(verb: str, model, train, out, batch_size: int, reference: str = "precompute") -> list[str]:
    extra = [f"dpo.reference={reference}"] if verb == "dpo" else []
    return [
        verb,
        *reward_overrides(model, train, out, f"train.max_steps={STEPS + 1}", "train.lr=1e-3",
                          f"train.save_every={RESUME_FROM}", "train.keep_checkpoints=5",
                          f"train.batch_size={batch_size}", *extra),
    ]  # fmt: skip


DATA = {"sft": "demos.jsonl", "reward": "rankings.jsonl", "dpo": "rankings.jsonl"}


def launch_plan(engine: str, plan: list[dict], tmp) -> list[list[dict]]:
    """Run ``plan`` (see cpu_engines.run_plan) on 2 processes under ``engine`` (``ddp``: plain data
    parallel); each process's outcomes. Prints the launch's seconds (pytest -s shows them)."""
    import time

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
    config = (
        ["--multi_gpu"]
        if engine == "ddp"
        else ["--config_file", str(REPO / "configs" / "accelerate" / f"{engine}.yaml")]
    )
    cmd = [
        str(VENV_BIN / "accelerate"), "launch", *config,
        "--num_processes", "2", "--main_process_port", str(free_port()),
        "-m", "tests.recipes.cpu_engines", "--plan", str(plan_path),
    ]  # fmt: skip
    t0 = time.perf_counter()
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
        out, err = proc.communicate(timeout=500)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{engine} launch did not finish in 500 s:\n" + out[-3000:] + err[-3000:])
    assert proc.returncode == 0, out[-3000:] + err[-5000:]
    outcomes = [json.loads((tmp / f"plan.results.rank{r}").read_text()) for r in range(2)]
    runs = " ".join(f"{run_name(o['args'])}={o['seconds']:.1f}" for o in outcomes[0] if o["ok"])
    print(f"\n[test_sharded] {engine} launch {time.perf_counter() - t0:.1f} s; runs (s): {runs}")
    return outcomes


def run_name(args: list[str]) -> str:
    out = next(a for a in args if a.startswith("train.output_dir="))
    return "/".join(Path(out.split("=", 1)[1]).parts[-2:])


def resumed(plan: list[dict], args: list[str], out, name: str) -> None:
    """Append a run and its copy resumed from the step-RESUME_FROM checkpoint."""
    plan.append({"args": args(out / name)})
    plan.append({"resume_copy": [str(out / name), str(out / f"{name}_resumed"), RESUME_FROM]})
    plan.append({"args": args(out / f"{name}_resumed")})


@pytest.fixture(scope="module")
def rl_files(data_dir, reward_model, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("rl_files")
    return {
        "reward_model": reward_model,
        "eval_prompts": write_jsonl(d / "eval.jsonl", [{"prompt": question(9, 9)}]),
        "demos": data_dir / "demos.jsonl",
    }


@pytest.fixture(scope="module")
def single(nano_model, data_dir, tmp_path_factory):
    """The 1-process runs, global batch 4."""
    out = tmp_path_factory.mktemp("single")
    for verb in VERBS:
        assert cli.main(run_args(verb, nano_model, data_dir / DATA[verb], out / verb, 4)) == 0
    assert cli.main([*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_lora", 4), *LORA]) == 0
    assert cli.main([*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_bf16", 4), BF16]) == 0
    assert cli.main([*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_kl", 4), KL]) == 0
    lora_kl = [*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_lora_kl", 4), *LORA, KL]
    assert cli.main(lora_kl) == 0
    return out


def engine_plan(engine: str, model, data_dir, prompts, rl_files: dict, out) -> list[dict]:
    """Every case of ``engine``'s launch: sft, reward, dpo and the RL runs, each resumed; under
    FSDP2 and ZeRO-3 a save that skips the gather last."""
    plan: list[dict] = []
    for verb in VERBS:
        resumed(plan, lambda o, v=verb: run_args(v, model, data_dir / DATA[v], o, 2), out, verb)
    # the reference model run on every batch (sharded for inference) instead of precomputed
    plan.append({"args": run_args("dpo", model, data_dir / DATA["dpo"], out / "dpo_frozen", 2, "frozen")})
    # gradient accumulation: 2 micro-batches of 1 a step (DeepSpeed's own accumulation)
    sft_accum = [*run_args("sft", model, data_dir / DATA["sft"], out / "sft_accum", 1), "train.grad_accum=2"]
    plan.append({"args": sft_accum})
    plan.append({"args": [*run_args("sft", model, data_dir / DATA["sft"], out / "sft_bf16", 2), BF16]})
    plan.append({"args": [*run_args("sft", model, data_dir / DATA["sft"], out / "sft_kl", 2), KL]})
    for name in RL:
        resumed(plan, lambda o, n=name: rl_args(n, model, prompts, rl_files, o), out, name)
    if engine in SHARDED:
        broken = run_args("sft", model, data_dir / "demos.jsonl", out / "broken", 2)
        plan.append({"args": broken, "break_gather": True})
    return plan


@pytest.fixture(scope="module")
def zero2_launch(nano_model, data_dir, prompts, rl_files, tmp_path_factory):
    """The ZeRO-2 launch, which also runs the RL runs on plain DDP (``out/ddp/``), the reference
    of every engine: ZeRO-2's start-up is paid anyway, and its runs are the cheapest."""
    out = tmp_path_factory.mktemp("zero2")
    plan = engine_plan("zero2", nano_model, data_dir, prompts, rl_files, out)
    # LoRA, which FSDP2 and ZeRO-3 refuse (configs/accelerate/zero2.yaml is its scale-out)
    plan.append({"args": [*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_lora", 2), *LORA]})
    lora_kl = [*run_args("sft", nano_model, data_dir / DATA["sft"], out / "sft_lora_kl", 2), *LORA, KL]
    plan.append({"args": lora_kl})
    resumed(plan, lambda o: [*rl_args("ppo", nano_model, prompts, rl_files, o), *LORA], out, "ppo_lora")
    ddp_plan = [{"args": rl_args(n, nano_model, prompts, rl_files, out / "ddp" / n), "ddp": True} for n in RL]
    lora = [*rl_args("ppo", nano_model, prompts, rl_files, out / "ddp" / "ppo_lora"), *LORA]
    plan += [*ddp_plan, {"args": lora, "ddp": True}]
    outcomes = launch_plan("zero2", plan, out)
    ddp_runs = len(ddp_plan) + 1
    assert all(o["ok"] for per_process in outcomes for o in per_process[-ddp_runs:]), outcomes
    return out, [per_process[:-ddp_runs] for per_process in outcomes]


@pytest.fixture(scope="module")
def ddp(zero2_launch):
    """The RL runs on DDP, 2 processes (run in the ZeRO-2 launch)."""
    return zero2_launch[0] / "ddp"


@pytest.fixture(scope="module", params=ENGINES)
def sharded(request, nano_model, data_dir, prompts, rl_files, tmp_path_factory):
    engine = request.param
    if engine == "zero2":
        return engine, *request.getfixturevalue("zero2_launch")
    out = tmp_path_factory.mktemp(engine)
    return (
        engine,
        out,
        launch_plan(engine, engine_plan(engine, nano_model, data_dir, prompts, rl_files, out), out),
    )


SAME_AS_SINGLE = {
    "sft": "sft",
    "reward": "reward",
    "dpo": "dpo",
    "dpo_frozen": "dpo",
    "sft_accum": "sft",
    "sft_kl": "sft_kl",
}
"""each 2-process case and the 1-process run it must end as"""


@pytest.mark.parametrize("verb", list(SAME_AS_SINGLE))
def test_sharded_run_ends_with_the_weights_of_ddp(sharded, single, verb):
    """dpo_frozen: dpo.reference=frozen, the reference model sharded for inference and run on every
    batch, against the 1-process run with precomputed reference log-probs (the same numbers);
    sft_accum: batch 1 and train.grad_accum=2 on 2 processes, the same global batch of 4; sft_kl:
    sft.kl_coef with its start a frozen copy, sharded for inference, run on every batch."""
    engine, out, _ = sharded
    m1, m2 = read_metrics(single / SAME_AS_SINGLE[verb]), read_metrics(out / verb)
    assert m2[0]["epoch"] == pytest.approx(m1[0]["epoch"])  # the same global batch
    for a, b in zip(m1, m2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (engine, verb, a, b)
        assert ("kl_to_start" in b) == ("kl_to_start" in a)
        if "kl_to_start" in a:
            assert b["kl_to_start"] == pytest.approx(a["kl_to_start"], rel=1e-4, abs=1e-7), (engine, a, b)
    if verb == "sft_kl":
        assert max(m["kl_to_start"] for m in m1) > 0
    assert_same_weights(
        load_weights(single / SAME_AS_SINGLE[verb] / "final"),
        load_weights(out / verb / "final"),
        atol=1e-4,
    )


def test_sharded_bf16_trains_like_one_process(sharded, single):
    """train.mixed_precision=bf16: autocast under FSDP2 (fp32 weights, written in float32), DeepSpeed's
    bf16 under ZeRO (bf16 weights with fp32 master copies; the final is its bf16 weights, as
    DeepSpeed saves them). The losses are one process's to bf16 precision; the final loads."""
    from transformers import AutoModelForCausalLM

    engine, out, _ = sharded
    m1, m2 = read_metrics(single / "sft_bf16"), read_metrics(out / "sft_bf16")
    for a, b in zip(m1, m2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3), (engine, a, b)
    dtypes = {t.dtype for t in load_weights(out / "sft_bf16" / "final").values()}
    assert dtypes == ({torch.bfloat16} if engine.startswith("zero") else {torch.float32}), dtypes
    _, info = AutoModelForCausalLM.from_pretrained(out / "sft_bf16" / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info


@pytest.mark.parametrize("verb", VERBS)
def test_sharded_final_loads_whole_with_auto_model(sharded, verb):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    _, out, _ = sharded
    if verb == "reward":
        model, info = AutoModelForSequenceClassification.from_pretrained(
            out / verb / "final", num_labels=1, output_loading_info=True
        )
    else:
        model, info = AutoModelForCausalLM.from_pretrained(out / verb / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    written = load_weights(out / verb / "final")
    for name, p in model.named_parameters():
        if name in written:
            torch.testing.assert_close(p.detach(), written[name])


@pytest.mark.parametrize("verb", VERBS)
def test_sharded_resume_is_exact(sharded, verb):
    _, out, _ = sharded
    assert_same_weights(
        load_weights(out / verb / "final"), load_weights(out / f"{verb}_resumed" / "final"), atol=1e-6
    )
    m, r = read_metrics(out / verb), read_metrics(out / f"{verb}_resumed")
    assert [x["step"] for x in r] == list(range(1, STEPS + 2))
    for a, b in zip(m[RESUME_FROM:], r[RESUME_FROM:], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)


def test_every_run_succeeds_and_a_save_that_skips_the_gather_fails_on_every_process(sharded):
    """What the engines wrote before saves were gathered (ZeRO-3: empty tensors; FSDP2: each
    process's rows) is refused: SaveError on both processes, and no final/ written. (Under ZeRO-2
    every process holds the whole parameters: there is no such save.)"""
    engine, out, outcomes = sharded
    for per_process in outcomes:
        good = per_process[:-1] if engine in SHARDED else per_process
        assert all(o["ok"] for o in good), [o for o in good if not o["ok"]]
        if engine in SHARDED:
            broken = per_process[-1]
            assert not broken["ok"] and "does not hold a whole model" in broken["error"]
            assert "has shape" in broken["error"] and "the config says" in broken["error"]
    if engine in SHARDED:
        assert not (out / "broken" / "final").exists()


COMPARED = (
    "score_raw",
    "kl",
    "policy_loss",
    "value_loss",
    "explained_variance",
    "ptx_loss",
    "online_dpo_loss",
)
EVALUATED = ("eval_score_raw", "eval_kl", "eval_length")


def same_figure(key: str, expected: float, got: float) -> bool:
    """One logged figure of a run on DDP and of the same run on another engine, equal to float
    tolerance (rel. 1e-4). Explained variance is 1 - var(returns - values) / var(returns): near 0
    it is a difference of two numbers near 1, so its ratio is what is compared to rel. 1e-4."""
    if key == "explained_variance":
        return 1 - got == pytest.approx(1 - expected, rel=1e-4)
    return got == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("rl", list(RL))
def test_sharded_rl_run_ends_with_the_weights_of_ddp(sharded, ddp, rl):
    """The same 2-process run on DDP: the same rollouts (each process samples with its own seed),
    the same updates. The reference, the reward model and the critic are sharded too (the
    critic's new value head is drawn whole, from the same seed as under DDP); the rollout engine
    reads the gathered copy."""
    engine, out, _ = sharded
    m1, m2 = read_metrics(ddp / rl), read_metrics(out / rl)
    assert [r["step"] for r in m2 if "score_raw" in r] == list(range(1, STEPS + 1))
    assert len(m1) == len(m2)
    for a, b in zip(m1, m2, strict=True):
        assert a.keys() == b.keys()
        for key in (*COMPARED, *EVALUATED):
            if key in a:
                assert same_figure(key, a[key], b[key]), (engine, rl, key, a, b)
    assert_same_weights(load_weights(ddp / rl / "final"), load_weights(out / rl / "final"), atol=1e-4)


@pytest.mark.parametrize("rl", list(RL))
def test_sharded_rl_resume_is_exact_and_loads(sharded, rl):
    from transformers import AutoModelForCausalLM

    _, out, _ = sharded
    assert_same_weights(
        load_weights(out / rl / "final"), load_weights(out / f"{rl}_resumed" / "final"), atol=1e-6
    )
    train = [r for r in read_metrics(out / rl) if "score_raw" in r]
    again = [r for r in read_metrics(out / f"{rl}_resumed") if "score_raw" in r]
    for a, b in zip(train, again, strict=True):
        for key in COMPARED:
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=1e-6), (rl, key)
    _, info = AutoModelForCausalLM.from_pretrained(out / rl / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]


def test_held_out_evaluation_runs_when_one_process_has_no_prompt(sharded, ddp):
    """One held-out prompt on 2 processes: the process without one still runs the collective
    forwards (reward model, policy, reference) the other runs, padded; the figures are DDP's."""
    engine, out, _ = sharded
    evals = [r for r in read_metrics(out / "ppo_reward") if "eval_score_raw" in r]
    assert [r["step"] for r in evals] == [0, STEPS]
    on_ddp = [r for r in read_metrics(ddp / "ppo_reward") if "eval_score_raw" in r]
    for a, b in zip(on_ddp, evals, strict=True):
        for key in EVALUATED:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (engine, key, a, b)


def test_deepspeed_ppo_checkpoints_and_resumes_its_critic(sharded):
    """Under DeepSpeed the policy and a separate critic each have their own engine (the critic's
    through a second Accelerator), both in the checkpoint; the shared critic's head is in the
    policy's checkpoint (whole, in no engine). Resumed runs give the uninterrupted runs' values."""
    engine, out, _ = sharded
    if not engine.startswith("zero"):
        pytest.skip("DeepSpeed only: the critic's own engine and checkpoint directory")
    for rl in ("ppo", "ppo_shared", "ppo_reward"):
        train = [r for r in read_metrics(out / rl) if "value_loss" in r]
        again = [r for r in read_metrics(out / f"{rl}_resumed") if "value_loss" in r]
        for a, b in zip(train, again, strict=True):
            for key in ("value_loss", "explained_variance"):
                assert b[key] == pytest.approx(a[key], abs=1e-6), (rl, key)
    assert (out / "ppo_resumed" / "checkpoints" / f"step-{RESUME_FROM}" / "critic").is_dir()
    assert not (out / "ppo_shared_resumed" / "checkpoints" / f"step-{RESUME_FROM}" / "critic").exists()


def test_zero2_trains_lora_like_one_process_and_ddp(zero2_launch, single, ddp):
    """LoRA SFT on ZeRO-2 ends with the 1-process weights; LoRA PPO (the reference: the policy
    with its adapters off) with DDP's, and resumes exactly; the merged finals load whole."""
    from transformers import AutoModelForCausalLM

    out = zero2_launch[0]
    for run in ("sft_lora", "sft_lora_kl"):  # the second pulled toward its start: the adapters off
        m1, m2 = read_metrics(single / run), read_metrics(out / run)
        for a, b in zip(m1, m2, strict=True):
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (run, a, b)
            if run == "sft_lora_kl":
                assert b["kl_to_start"] == pytest.approx(a["kl_to_start"], rel=1e-4, abs=1e-7), (a, b)
        assert_same_weights(
            load_weights(single / run / "final"), load_weights(out / run / "final"), atol=1e-4
        )
    for a, b in zip(read_metrics(ddp / "ppo_lora"), read_metrics(out / "ppo_lora"), strict=True):
        for key in COMPARED:
            if key in a:
                assert same_figure(key, a[key], b[key]), (key, a, b)
    final = load_weights(out / "ppo_lora" / "final")
    assert_same_weights(load_weights(ddp / "ppo_lora" / "final"), final, atol=1e-4)
    assert_same_weights(final, load_weights(out / "ppo_lora_resumed" / "final"), atol=1e-6)
    assert not any("lora" in name for name in final)  # merged
    for run in ("sft_lora", "ppo_lora"):
        _, info = AutoModelForCausalLM.from_pretrained(out / run / "final", output_loading_info=True)
        assert not info["missing_keys"] and not info["mismatched_keys"], (run, info)
