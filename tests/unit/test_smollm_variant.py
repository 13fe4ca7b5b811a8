"""bench/smollm_variant.py: a variant of the smollm preset may change only what the stages it
runs again are made with, and it reads the preset an earlier run (or variant) was made with."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import smollm_variant as v  # noqa: E402

from rlhf.demo.smollm_preset import SMOL_PRESETS  # noqa: E402


def test_fields_are_typed_and_bools_spelled_out():
    got = v.parse_sets(["ppo_steps=24", "ppo_lr=1e-4", "ppo_critic=reward", "rate_sft_prompts=true"], "rank")
    assert got == {"ppo_steps": 24, "ppo_lr": 1e-4, "ppo_critic": "reward", "rate_sft_prompts": True}
    with pytest.raises(SystemExit, match="a bool is true or false"):
        v.parse_sets(["rate_sft_prompts=yes"], "rank")
    with pytest.raises(SystemExit, match="not a int"):
        v.parse_sets(["ppo_steps=many"], "rank")
    with pytest.raises(SystemExit, match="SmolPreset field"):
        v.parse_sets(["ppo_stepz=3"], "rank")


@pytest.mark.parametrize(
    ("start", "name"),
    [("rank", "sft_lr"), ("reward", "n_rating"), ("ppo", "reward_lr"), ("ppo", "rate_sft_prompts")],
)
def test_a_linked_stages_settings_cannot_change(start, name):
    value = getattr(SMOL_PRESETS["smollm"], name)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    with pytest.raises(SystemExit, match=f"--set {name}: the stages linked"):
        v.parse_sets([f"{name}={text}"], start)


def test_ppo_keys_name_a_section():
    assert v.parse_ppo(["algo.name=rloo", "critic.lr=1e-4"]) == {"algo.name": "rloo", "critic.lr": "1e-4"}
    with pytest.raises(SystemExit, match="section.key=value"):
        v.parse_ppo(["kl=0.1"])


def test_the_preset_and_seed_come_from_the_run_it_starts_from(tmp_path):
    assert v.made_with(tmp_path) == (SMOL_PRESETS["smollm"], 0)
    demo = replace(SMOL_PRESETS["smollm"], n_rating=96)
    (tmp_path / "results.json").write_text(
        json.dumps({"config": {"preset": "smollm", "seed": 2, **asdict(demo)}})
    )
    assert v.made_with(tmp_path) == (demo, 2)
    variant = replace(demo, rate_sft_prompts=True)
    (tmp_path / "variant.json").write_text(json.dumps({"preset": asdict(variant), "seed": 2}))
    assert v.made_with(tmp_path) == (variant, 2)


def test_linking_reuses_the_runs_stages_and_refuses_to_mix_two_runs(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    for rel in v.linked("ppo"):
        path = run / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        else:
            (path / "final").mkdir(parents=True)
    v.link(run, out, "reward")
    assert (out / "sft" / "final").is_dir() and (out / "data" / "rankings.jsonl").is_file()
    assert not (out / "reward").exists()  # the stage the variant runs again
    v.link(run, out, "reward")  # again: the same links
    other = tmp_path / "other"
    (other / "sft").mkdir(parents=True)
    with pytest.raises(SystemExit, match="is missing"):
        v.link(other, tmp_path / "out2", "rank")
    (other / "data").mkdir()
    (other / "data" / "demonstrations.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit, match="exists and is not"):
        v.link(other, out, "rank")
