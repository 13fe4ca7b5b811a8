"""train.report_to: every training verb reports its config and its metrics.jsonl figures, at the
same steps, to TensorBoard (read back with TensorBoard's own reader) and W&B (offline)."""

from __future__ import annotations

import json

import pytest

from rlhf.cli import main
from rlhf.config import ConfigError

from .helpers import read_metrics, reward_overrides, sft_overrides

ea = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard is not installed (pip install -e '.[track]')",
)

DIGITS = "tests.recipes.reward_fns:digits"


def verb_args(verb, nano_model, data_dir, prompts, out) -> list[str]:
    """A 3-step run of ``verb`` logging every step."""
    if verb == "sft":
        return sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=3")
    if verb == "reward":
        return reward_overrides(nano_model, data_dir / "rankings.jsonl", out, "train.max_steps=3")
    if verb == "dpo":
        return sft_overrides(nano_model, data_dir / "pairs.jsonl", out, "train.max_steps=3")
    return [
        f"model.path={nano_model}",
        f"data.train={prompts}",
        f"train.output_dir={out}",
        "train.batch_size=4",
        "train.max_steps=3",
        "rollout.max_new_tokens=4",
        f"rewards.function={DIGITS}",
        "critic.init=policy",
    ]


def tensorboard_scalars(run_dir) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the run's TensorBoard event files."""
    acc = ea.EventAccumulator(str(run_dir / "tensorboard" / "rlhf"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def tensorboard_hparams(run_dir) -> dict:
    """The hyperparameters of the run's TensorBoard hparams session."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    (session,) = [p.parent for p in (run_dir / "tensorboard" / "rlhf").glob("*/events.out.tfevents.*")]
    acc = ea.EventAccumulator(str(session))
    acc.Reload()
    for raw in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        if data.HasField("session_start_info"):
            return dict(data.session_start_info.hparams)
    raise AssertionError(f"no hparams session in {session}")


@pytest.mark.parametrize("verb", ["sft", "reward", "dpo", "ppo"])
def test_every_training_verb_logs_to_tensorboard(verb, nano_model, data_dir, prompts, tmp_path):
    out = tmp_path / "run"
    assert (
        main([verb, *verb_args(verb, nano_model, data_dir, prompts, out), "train.report_to=tensorboard"]) == 0
    )
    logged = read_metrics(out)
    scalars = tensorboard_scalars(out)
    # every number of every metrics.jsonl line, at its step (float32 in the event file)
    expected = [
        (k, m["step"], v) for m in logged for k, v in m.items() if k != "step" and type(v) in (int, float)
    ]
    assert len(expected) >= 3
    for key, step, value in expected:
        assert scalars[key][step] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, step)
    assert {k for k, _, _ in expected} == set(scalars)
    # the resolved config as hyperparameters
    hparams = tensorboard_hparams(out)
    assert hparams["train.max_steps"].number_value == 3
    assert hparams["model.path"].string_value == str(nano_model)
    assert hparams["train.report_to"].string_value == "tensorboard"


def test_none_writes_no_tracker_files(nano_model, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["sft", *sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=2")]) == 0
    assert not (out / "tensorboard").exists() and not (out / "wandb").exists()


def test_a_missing_tracker_package_is_named(nano_model, data_dir, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    out = tmp_path / "run"
    args = sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.report_to=tensorboard,wandb")
    assert main(["sft", *args]) == 2
    err = capsys.readouterr().err
    assert "train.report_to=wandb" in err and "'wandb' package" in err and "rlhf[track]" in err
    assert not out.exists()  # stopped before any work


def test_bad_report_to_values_are_refused():
    from rlhf.recipes.trackers import resolve

    assert resolve(["none"]) == [] and resolve([]) == []
    assert resolve(["tensorboard", "tensorboard"]) == ["tensorboard"]
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        resolve(["none", "tensorboard"])
    with pytest.raises(ConfigError, match="unknown tracker 'mlflow'"):
        resolve(["mlflow"])
    assert main(["sft", "model.path=x", "train.report_to=tensorbord"]) == 2


def wandb_records(path) -> list[bytes]:
    """The records of an offline W&B run file (``run-*.wandb``): the LevelDB log format W&B writes
    (a 7-byte header ``:W&B`` + magic + version, then 32 KiB blocks of records, each with a 7-byte
    header: crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4). wandb ships no reader."""
    import struct

    raw, block = path.read_bytes(), 32768
    assert raw[:4] == b":W&B", path
    records, pos, part = [], 7, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            pos += left
            continue
        part += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(part)
            part = b""
    return records


def test_wandb_offline_holds_the_logged_scalars(nano_model, data_dir, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install -e '.[track]')")
    from wandb.proto import wandb_internal_pb2

    monkeypatch.delenv("WANDB_MODE", raising=False)  # the default: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    args = sft_overrides(
        nano_model, data_dir / "demos.jsonl", out, "train.max_steps=3", "train.report_to=wandb"
    )
    assert main(["sft", *args]) == 0
    wandb.teardown()  # the run is finished; this waits for W&B's service to close the run file
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    history: dict[int, dict[str, float]] = {}
    config = {}
    for data in wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            # an item is named by `key` or, as W&B also writes it, by `nested_key`
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            step = record.history.step.num if record.history.HasField("step") else items["_step"]
            history.setdefault(step, {}).update(items)
        elif record.WhichOneof("record_type") == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
    logged = read_metrics(out)
    assert sorted(history) == [m["step"] for m in logged] == [1, 2, 3]
    for m in logged:
        for key, value in m.items():
            if key != "step":
                assert history[m["step"]][key] == pytest.approx(value), key
    assert config["train.max_steps"] == 3 and config["model.path"] == str(nano_model)


def test_trackio_holds_the_logged_scalars_and_config(nano_model, data_dir, tmp_path):
    pytest.importorskip("trackio", reason="trackio is not installed (pip install -e '.[track]')")
    import os
    import sqlite3
    import subprocess
    import sys

    # trackio reads TRACKIO_DIR once, at import: the run goes in a process of its own
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio")}
    out = tmp_path / "run"
    args = sft_overrides(
        nano_model, data_dir / "demos.jsonl", out, "train.max_steps=3", "train.report_to=trackio"
    )
    done = subprocess.run([sys.executable, "-m", "rlhf.cli", "sft", *args], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # trackio's own local store: one SQLite file per project, each step's metrics as a JSON row
    with sqlite3.connect(tmp_path / "trackio" / "rlhf.db") as db:
        rows = db.execute("SELECT step, metrics FROM metrics WHERE run_name = ?", ("run",)).fetchall()
        (config,) = db.execute("SELECT config FROM configs WHERE run_name = ?", ("run",)).fetchone()
    history: dict[int, dict] = {}
    for step, metrics in rows:
        history.setdefault(step, {}).update(json.loads(metrics))
    logged = read_metrics(out)
    assert sorted(history) == [m["step"] for m in logged] == [1, 2, 3]
    for m in logged:
        for key, value in m.items():
            if key != "step":
                assert history[m["step"]][key] == pytest.approx(value), key
    config = json.loads(config)
    assert config["train.max_steps"] == 3 and config["model.path"] == str(nano_model)
