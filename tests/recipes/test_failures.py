"""Runs that must stop: a non-finite loss, and every kind of bad input a user can give, which
must end in exit code 2 and one clear message naming the file, line, field or key."""

from __future__ import annotations

import json

import pytest

from rlhf import cli
from rlhf.config import load_config
from rlhf.recipes import sft
from rlhf.recipes.loop import TrainingError

from .helpers import demonstrations, rankings, read_metrics, reward_overrides, sft_overrides, write_jsonl


def test_nan_loss_stops_sft_before_writing_anything_bad(nano_model, data_dir, tmp_path, monkeypatch):
    real = sft.masked_nll
    calls = []

    def nan_from_step_3(logits, labels):  # one call per micro-batch: call 3 is step 3
        calls.append(1)
        nll, count = real(logits, labels)
        return (nll * float("nan") if len(calls) >= 3 else nll), count

    monkeypatch.setattr(sft, "masked_nll", nan_from_step_3)
    out = tmp_path / "run"
    cfg = load_config(
        sft.Config,
        None,
        sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=6", "train.save_every=1"),
    )
    with pytest.raises(TrainingError, match="at step 3") as err:
        sft.train(cfg)
    assert str(out / "checkpoints" / "step-2") in str(err.value), "the message names the last good checkpoint"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-1", "step-2"]
    assert not (out / "final").exists()
    assert [m["step"] for m in read_metrics(out)] == [1, 2]


def test_nan_kl_to_the_start_stops_sft_by_name(nano_model, data_dir, tmp_path, monkeypatch):
    """sft.kl_coef: a non-finite KL stops the run before its step, naming the KL, not the loss."""
    real = sft.masked_kl_to_reference
    calls = []

    def nan_from_step_2(logits, ref_logits, labels, weights=None):
        calls.append(1)
        kl, count = real(logits, ref_logits, labels, weights)
        return (kl * float("nan") if len(calls) >= 2 else kl), count

    monkeypatch.setattr(sft, "masked_kl_to_reference", nan_from_step_2)
    out = tmp_path / "run"
    overrides = sft_overrides(
        nano_model, data_dir / "demos.jsonl", out, "train.max_steps=4", "sft.kl_coef=0.5"
    )
    with pytest.raises(TrainingError, match=r"KL to the starting model \(sft.kl_coef\) is nan at step 2"):
        sft.train(load_config(sft.Config, None, overrides))
    assert not (out / "final").exists()
    assert [m["step"] for m in read_metrics(out)] == [1]


def test_diverging_reward_run_exits_1_from_the_cli(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = reward_overrides(
        nano_model, data_dir / "rankings.jsonl", out, "train.lr=1e30", "train.max_steps=5"
    )
    assert cli.main(["reward", *args]) == 1
    err = capsys.readouterr().err
    assert "training stopped" in err and "at step" in err
    assert "Traceback" not in err
    assert not (out / "final").exists()


def bad_demos(tmp_path, lines: list[str]):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps(demonstrations(1)[0])


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([GOOD, '{"prompt": "What is 1 + 2?", "compl'], [":2:", "not valid JSON"]),
        ([GOOD, GOOD, '{"prompt": "What is 1 + 2?"}'], [":3:", "missing field 'completion'"]),
        ([GOOD, '{"prompt": 7, "completion": " 7."}'], [":2:", "'prompt'"]),
        ([], ["holds no records"]),
    ],
    ids=["truncated-json", "missing-field", "wrong-type", "empty-file"],
)
def test_bad_demonstrations_exit_2_naming_file_and_line(nano_model, tmp_path, capsys, lines, expected):
    data = bad_demos(tmp_path, lines)
    out = tmp_path / "run"
    assert cli.main(["sft", *sft_overrides(nano_model, data, out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlhf sft: error: ")
    assert str(data) in err
    for piece in expected:
        assert piece in err, err
    assert "Traceback" not in err
    assert not out.exists(), "the run directory must not be created when the inputs are invalid"


def test_ranks_responses_mismatch_exits_2(nano_model, tmp_path, capsys):
    recs = rankings(3)
    recs[1]["ranks"] = recs[1]["ranks"][:2]
    data = write_jsonl(tmp_path / "rankings.jsonl", recs)
    out = tmp_path / "run"
    assert cli.main(["reward", *reward_overrides(nano_model, data, out)]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err
    assert "'ranks' has 2 entries but 'responses' has 3" in err
    assert not out.exists()


def test_all_records_too_long_exits_2(nano_model, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "long.jsonl", [{"prompt": "What is 1 + 1?", "completion": " too long" * 80}]
    )
    out = tmp_path / "run"
    assert cli.main(["sft", *sft_overrides(nano_model, data, out)]) == 2
    err = capsys.readouterr().err
    assert "data.max_length" in err and str(data) in err
    assert not out.exists()


def test_unknown_override_key_suggests_the_right_one(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [*sft_overrides(nano_model, data_dir / "demos.jsonl", out), "train.max_step=3"]
    assert cli.main(["sft", *args]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.max_step'" in err
    assert "did you mean train.max_steps" in err
    assert not out.exists()


def test_wrongly_typed_override_names_the_key(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [*sft_overrides(nano_model, data_dir / "demos.jsonl", out), "train.batch_size=four"]
    assert cli.main(["sft", *args]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size" in err and "'four'" in err
    assert not out.exists()


def test_missing_model_path_exits_2_before_creating_the_run_dir(data_dir, tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    out = tmp_path / "run"
    for verb, data in [("sft", "demos.jsonl"), ("reward", "rankings.jsonl")]:
        assert cli.main([verb, *sft_overrides(missing, data_dir / data, out)]) == 2
        err = capsys.readouterr().err
        assert "model.path" in err and str(missing) in err and "does not exist" in err
        assert not out.exists()


def test_yaml_config_with_a_typo_names_the_file(nano_model, data_dir, tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(f"model:\n  path: {nano_model}\ntrain:\n  bach_size: 4\n  max_steps: 2\n")
    out = tmp_path / "run"
    args = [
        "sft",
        "--config",
        str(config),
        f"data.train={data_dir / 'demos.jsonl'}",
        f"train.output_dir={out}",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert str(config) in err
    assert "train.bach_size" in err and "did you mean train.batch_size" in err
    assert not out.exists()


def test_invalid_inputs_leave_an_existing_run_untouched(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    good = sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=2")
    assert cli.main(["sft", *good]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = bad_demos(tmp_path, [GOOD, "{"])
    assert cli.main(["sft", *good, f"data.train={bad}"]) == 2
    capsys.readouterr()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
