"""Data parallel: the same command under `accelerate launch` on 2 CPU processes (gloo) with
batch_size=2 each ends with the weights of 1 process with batch_size=4 (same global batch).

Note on the launch flags: `accelerate launch --cpu --num_processes 2` silently starts ONE
process (its "simple" launcher); 2 CPU processes need the torchrun launcher (`--multi_gpu`)
with ACCELERATE_USE_CPU=1, which accelerate turns into MULTI_CPU over gloo. The test checks that
the run really had 2 processes (the logged epoch counts the global batch), so a launch that
quietly falls back to one process fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess

import pytest
import torch

from rlhf import cli
from rlhf.eval.metrics import distinct_n, repeated_ngram_share

from .helpers import (
    VENV_BIN,
    assert_same_weights,
    load_weights,
    read_metrics,
    reward_overrides,
    sft_overrides,
)
from .reward_fns import digits

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

STEPS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_2_processes(args: list[str], tmp_path) -> None:
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # no user `accelerate config` file
    }
    cmd = [
        str(VENV_BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "rlhf.cli",
        *args,
    ]
    # its own process group, so that a hung run is killed with the workers torchrun started
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail("accelerate launch did not finish in 300 s:\n" + out[-3000:] + err[-3000:])
    assert proc.returncode == 0, out[-3000:] + err[-3000:]


def check_same_run(single, multi, n_records: int, global_batch: int = 4) -> None:
    m_single, m_multi = read_metrics(single), read_metrics(multi)
    # the epoch counts records seen: proof that the launch really had 2 processes of batch 2
    assert m_multi[0]["epoch"] == pytest.approx(global_batch / n_records, abs=1e-3)
    assert [m["step"] for m in m_multi] == [m["step"] for m in m_single]
    for a, b in zip(m_single, m_multi, strict=True):
        for key in ("loss", "grad_norm", "eval_loss", "eval_accuracy", "eval_margin"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (key, a, b)
    assert_same_weights(load_weights(single / "final"), load_weights(multi / "final"), atol=1e-4)
    assert json.loads((multi / "checkpoints" / "step-4" / "state.json").read_text())["step"] == 4


def common(*extra: str) -> list[str]:
    return [f"train.max_steps={STEPS}", "train.lr=1e-3", "train.save_every=4", *extra]


def test_sft_on_2_processes_matches_1_process(nano_model, data_dir, tmp_path, capsys):
    train, evals = data_dir / "demos.jsonl", f"data.eval={data_dir / 'demos_eval.jsonl'}"
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert (
        cli.main(["sft", *sft_overrides(nano_model, train, single, *common("train.batch_size=4", evals))])
        == 0
    )
    capsys.readouterr()
    launch_2_processes(
        ["sft", *sft_overrides(nano_model, train, multi, *common("train.batch_size=2", evals))], tmp_path
    )
    check_same_run(single, multi, n_records=64)


def test_reward_on_2_processes_matches_1_process(nano_model, data_dir, tmp_path, capsys):
    train, evals = data_dir / "rankings.jsonl", f"data.eval={data_dir / 'rankings_eval.jsonl'}"
    single, multi = tmp_path / "single", tmp_path / "multi"
    args = common(evals)
    assert (
        cli.main(["reward", *reward_overrides(nano_model, train, single, *args, "train.batch_size=4")]) == 0
    )
    capsys.readouterr()
    launch_2_processes(
        ["reward", *reward_overrides(nano_model, train, multi, *args, "train.batch_size=2")], tmp_path
    )
    check_same_run(single, multi, n_records=48)
    # reward statistics are reduced over both processes' shares of the training responses
    cfg_single = json.loads((single / "final" / "config.json").read_text())
    cfg_multi = json.loads((multi / "final" / "config.json").read_text())
    for key in ("reward_mean", "reward_std"):
        assert cfg_multi[key] == pytest.approx(cfg_single[key], rel=1e-4, abs=1e-5)


def test_dpo_on_2_processes_matches_1_process(nano_model, data_dir, tmp_path, capsys):
    """The reference log-probs precomputed over both processes' shares of the pairs."""
    train, evals = data_dir / "rankings.jsonl", f"data.eval={data_dir / 'rankings_eval.jsonl'}"
    single, multi = tmp_path / "single", tmp_path / "multi"
    args = common(evals, "dpo.reference=precompute")
    assert cli.main(["dpo", *reward_overrides(nano_model, train, single, *args, "train.batch_size=4")]) == 0
    capsys.readouterr()
    launch_2_processes(
        ["dpo", *reward_overrides(nano_model, train, multi, *args, "train.batch_size=2")], tmp_path
    )
    check_same_run(single, multi, n_records=48 * 3)  # each ranking of 3 is 3 pairs


def test_ppo_on_2_processes_logs_and_writes_every_processes_rollouts(nano_model, prompts, tmp_path):
    """Sampling differs by process (each has its own seed), so the run cannot equal one process's;
    what it logs must still cover both processes' rollouts."""
    out = tmp_path / "ppo"
    launch_2_processes(
        [
            "ppo",
            f"model.path={nano_model}",
            f"data.train={prompts}",
            f"train.output_dir={out}",
            "rewards.function=tests.recipes.reward_fns:digits",
            "critic.init=policy",
            "train.batch_size=4",
            "rollout.samples_per_prompt=2",
            "rollout.max_new_tokens=6",
            "rollout.samples_every=1",
            *common(),
        ],
        tmp_path,
    )
    m = read_metrics(out)
    assert [r["step"] for r in m] == list(range(1, STEPS + 1))
    assert m[0]["epoch"] == pytest.approx(8 / 64, abs=1e-3)  # 2 processes x 4 prompts
    for r in m:
        rows = [json.loads(x) for x in (out / "samples" / f"step-{r['step']}.jsonl").read_text().splitlines()]
        assert len(rows) == 16  # 8 prompts x 2 samples, from both processes
        completions = [x["response"] for x in rows]
        assert r["distinct_2"] == pytest.approx(distinct_n(completions, 2), abs=1e-6)
        assert r["repeated_bigrams"] == pytest.approx(
            sum(map(repeated_ngram_share, completions)) / 16, abs=1e-6
        )
        assert r["score_raw"] == pytest.approx(sum(x["score"] for x in rows) / 16, abs=1e-5)
    assert (out / "final" / "model.safetensors").is_file()


def test_grpo_batch_scale_on_2_processes_reads_the_whole_batch(nano_model, prompts, tmp_path):
    """algo.scale_rewards=batch divides by the std of both processes' scores, not each one's own;
    score_raw_std is that batch's too."""
    out = tmp_path / "grpo"
    launch_2_processes(
        [
            "ppo",
            f"model.path={nano_model}",
            f"data.train={prompts}",
            f"train.output_dir={out}",
            "rewards.function=tests.recipes.reward_fns:digits",
            "algo.name=grpo",
            "algo.scale_rewards=batch",
            "train.batch_size=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=6",
            "rollout.samples_every=1",
            "train.max_steps=3",
            "train.lr=1e-3",
        ],
        tmp_path,
    )
    m = read_metrics(out)
    assert len(m) == 3
    halves_differ = False
    for r in m:
        scores = torch.tensor(
            [
                json.loads(x)["score"]
                for x in (out / "samples" / f"step-{r['step']}.jsonl").read_text().splitlines()
            ]
        )
        assert len(scores) == 16  # 2 processes x 2 prompts x 4 samples
        assert r["advantage_scale"] == pytest.approx(scores.std().item(), abs=1e-5)
        assert r["score_raw_std"] == pytest.approx(scores.std().item(), abs=1e-5)
        halves_differ |= all(
            abs(h.std().item() - scores.std().item()) > 1e-4 for h in (scores[:8], scores[8:])
        )
    assert halves_differ  # so the checks above tell the batch's std from one process's


def test_ppo_on_2_processes_resumes_exactly(nano_model, prompts, tmp_path):
    """Both processes' sampling seeds, RNG states, optimizers and the KL controller come back from
    a checkpoint: a run resumed from step 2 ends with the weights of the run that never stopped."""
    args = lambda out: [  # noqa: E731
        "ppo",
        f"model.path={nano_model}",
        f"data.train={prompts}",
        f"train.output_dir={out}",
        "rewards.function=tests.recipes.reward_fns:digits",
        "critic.init=policy",
        "critic.lr=1e-2",
        "train.batch_size=4",
        "train.max_steps=5",
        "train.save_every=2",
        "rollout.max_new_tokens=6",
        "rollout.samples_per_prompt=2",
        "algo.minibatches=2",
        "algo.kl_target=0.5",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    launch_2_processes(args(a), tmp_path)
    shutil.copytree(a, b)  # as if the run had died after its step-2 checkpoint
    shutil.rmtree(b / "final")
    shutil.rmtree(b / "checkpoints" / "step-4")
    launch_2_processes(args(b), tmp_path)
    assert_same_weights(load_weights(a / "final"), load_weights(b / "final"), atol=1e-6)
    ma, mb = read_metrics(a), read_metrics(b)
    assert [r["step"] for r in mb] == [1, 2, 3, 4, 5]
    for ra, rb in zip(ma, mb):
        assert ra["score_raw"] == pytest.approx(rb["score_raw"], abs=1e-6)
        assert ra["kl_coef"] == pytest.approx(rb["kl_coef"], rel=1e-9)


def test_eval_on_2_processes_matches_1_process(
    nano_model, prompts, data_dir, reward_model, tmp_path, capsys, monkeypatch
):
    """Each process answers every other prompt; the report and samples.jsonl are those of one process."""
    baseline = cli_sft(nano_model, data_dir, tmp_path)
    args = lambda out: [  # noqa: E731
        "eval",
        f"model.path={baseline}",
        f"eval.baseline={nano_model}",
        f"eval.prompts={prompts}",
        f"eval.reward_model={reward_model}",
        "eval.gold=tests.recipes.reward_fns:counted_digits",
        f"eval.text={data_dir / 'demos_eval.jsonl'}",
        "eval.max_new_tokens=6",
        "eval.kl_samples=2",
        f"eval.output_dir={out}",
    ]
    single, multi = tmp_path / "single", tmp_path / "multi"
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("RLHF_TEST_CALLS", str(calls))
    assert cli.main(args(single)) == 0
    capsys.readouterr()
    calls.unlink()
    launch_2_processes(args(multi), tmp_path)
    # the gold scorer read each of the 64 x 2 responses once, half in each process
    per_process = [tuple(map(int, line.split())) for line in calls.read_text().splitlines()]
    assert len({pid for pid, _ in per_process}) == 2 and sorted(n for _, n in per_process) == [64, 64]
    rows_1, rows_2 = (
        [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()] for d in (single, multi)
    )
    assert len(rows_2) == 64 and [r["prompt"] for r in rows_2] == [r["prompt"] for r in rows_1]
    for a, b in zip(rows_1, rows_2):
        assert a["policy"] == b["policy"] and a["baseline"] == b["baseline"]
        for key in ("policy_reward", "baseline_reward", "policy_gold", "baseline_gold"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
    r1, r2 = (json.loads((d / "report.json").read_text()) for d in (single, multi))
    assert r2["prompts"] == 64
    assert r2["win_rate"]["reward"]["wins"] == r1["win_rate"]["reward"]["wins"]
    for name in ("policy", "baseline"):
        for key in ("reward_mean", "gold_mean", "length", "distinct_2", "nll"):
            assert r2[name][key] == pytest.approx(r1[name][key], rel=1e-5, abs=1e-6), (name, key)
    # KL: the same number of sampled responses; each process samples its own share, so not the same ones
    assert r2["policy"]["kl_responses"] == r1["policy"]["kl_responses"] == 128
    assert math.isfinite(r2["policy"]["kl"])


def cli_sft(nano_model, data_dir, tmp_path):
    """A policy that differs from the nano model: 20 SFT steps."""
    out = tmp_path / "sft"
    assert cli.main(["sft", *sft_overrides(nano_model, data_dir / "demos.jsonl", out)]) == 0
    return out / "final"


def test_sample_and_best_of_n_on_2_processes_split_the_prompts(nano_model, prompts, tmp_path, monkeypatch):
    """Each process samples and scores every other prompt; the main process writes them all, in order."""
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("RLHF_TEST_CALLS", str(calls))
    common_args = [
        f"model.path={nano_model}",
        f"sample.prompts={prompts}",
        "sample.n=3",
        "sample.max_new_tokens=5",
    ]
    launch_2_processes(["sample", *common_args, f"sample.output={tmp_path / 'cands.jsonl'}"], tmp_path)
    sets = [json.loads(x) for x in (tmp_path / "cands.jsonl").read_text().splitlines()]
    questions = [json.loads(x)["prompt"] for x in prompts.read_text().splitlines()]
    assert [s["prompt"] for s in sets] == questions and [s["id"] for s in sets] == [
        f"p{i}" for i in range(64)
    ]
    assert all(len(s["responses"]) == 3 for s in sets)
    out = tmp_path / "bon"
    launch_2_processes(
        [
            "best-of-n",
            *common_args,
            "best_of_n.reward_function=tests.recipes.reward_fns:counted_digits",
            f"best_of_n.output_dir={out}",
        ],
        tmp_path,
    )
    per_process = [tuple(map(int, line.split())) for line in calls.read_text().splitlines()]
    assert len({pid for pid, _ in per_process}) == 2 and sorted(n for _, n in per_process) == [
        96,
        96,
    ]  # 32 prompts x 3
    scored = [json.loads(x) for x in (out / "scored.jsonl").read_text().splitlines()]
    best = [json.loads(x) for x in (out / "best.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in scored] == [b["prompt"] for b in best] == questions
    for s, b in zip(scored, best):
        assert s["scores"] == pytest.approx(digits([s["prompt"]] * 3, s["responses"]))
        assert b["completion"] == s["responses"][s["best"]] and s["scores"][s["best"]] == max(s["scores"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts"] == 64
    assert summary["mean_best_score"] == pytest.approx(sum(max(s["scores"]) for s in scored) / 64)
