"""The `rlhf` command line: --help documents every config key; --config plus overrides."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from rlhf import cli
from rlhf.config import describe
from rlhf.recipes import reward, sft

from .helpers import VENV_BIN, read_metrics


def check_help_lists_every_key(text: str, config_cls) -> None:
    rows = describe(config_cls)
    assert len(rows) > 20
    for key, _type, default, doc in rows:
        assert f"  {key} = {default}" in text, f"{key} missing from --help"
        assert doc, f"config key {key} has no doc string"
        assert doc in text, f"doc of {key} missing from --help"


def test_sft_help_lists_every_config_key_with_its_doc():
    proc = subprocess.run(
        [str(VENV_BIN / "rlhf"), "sft", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout
    check_help_lists_every_key(proc.stdout, sft.Config)
    assert "sft.packing" in proc.stdout


def test_reward_help_lists_every_config_key_with_its_doc(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reward", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    check_help_lists_every_key(out, reward.Config)
    assert "reward.use_margin" in out


def test_config_file_plus_override_and_the_override_wins(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "sft.yaml"
    # written by hand: YAML 1.1 reads 3e-3 (no dot) as a string, which must still mean 0.003
    config.write_text(
        f"model:\n  path: {nano_model}\n"
        f"data:\n  train: {data_dir / 'demos.jsonl'}\n  max_length: 64\n"
        f"train:\n  output_dir: {out}\n  max_steps: 6\n  batch_size: 4\n  lr: 3e-3\n  log_every: 1\n"
        "sft:\n  packing: true\n"
    )

    assert cli.main(["sft", "--config", str(config), "train.max_steps=3", "train.seed=7"]) == 0
    capsys.readouterr()
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["train"]["max_steps"] == 3  # the override wins over the file
    assert resolved["train"]["seed"] == 7
    assert resolved["train"]["lr"] == 3e-3  # from the file
    assert resolved["sft"]["packing"] is True
    assert resolved["data"]["max_length"] == 64
    assert resolved["train"]["schedule"] == "cosine"  # a default
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3]
    assert (out / "final" / "model.safetensors").is_file()


def test_top_level_help_lists_come_from_the_registries(capsys):
    """`rlhf --help` names every registered RL algorithm and DPO loss; `rlhf demo --help` every preset."""
    from rlhf.demo.presets import PRESETS
    from rlhf.losses.dpo import DPO_LOSSES
    from rlhf.recipes.algorithms import ALGORITHMS

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    assert f"algo.name={'|'.join(ALGORITHMS)}" in text and "online_dpo" in ALGORITHMS
    assert f"dpo.loss={'|'.join(DPO_LOSSES)}" in text and "simpo" in DPO_LOSSES
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    assert "{" + ",".join([*PRESETS, "smollm"]) + "}" in capsys.readouterr().out


def test_version_names_the_package_and_its_libraries(capsys):
    import torch

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("rlhf ")
    assert f"torch {torch.__version__}" in out
