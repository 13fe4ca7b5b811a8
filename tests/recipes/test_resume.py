"""Exact resume: a run interrupted after a checkpoint and rerun on its directory ends with the
same weights and metrics as one never interrupted."""

from __future__ import annotations

import json

import pytest

from rlhf.config import load_config
from rlhf.recipes import reward, sft

from .helpers import assert_same_weights, load_weights, read_metrics, reward_overrides, sft_overrides

RECIPES = {
    "sft": (sft, sft_overrides, "demos.jsonl"),
    "reward": (reward, reward_overrides, "rankings.jsonl"),
}


class Interrupt:
    """A step callback that stops the run (like Ctrl-C) after step ``at``."""

    def __init__(self, at: int | None = None):
        self.at = at
        self.steps: list[int] = []

    def __call__(self, step: int) -> None:
        self.steps.append(step)
        if step == self.at:
            raise KeyboardInterrupt


def check_checkpoints(run_dir, expected_steps: list[int]) -> None:
    ckpts = run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [f"step-{s}" for s in expected_steps]
    for s in expected_steps:
        d = ckpts / f"step-{s}"
        assert json.loads((d / "state.json").read_text())["step"] == s
        names = {p.name for p in d.iterdir()}
        assert any(n.startswith("model") for n in names), names
        assert any(n.startswith("optimizer") for n in names), names
        assert any(n.startswith("random_states") for n in names), names
    assert not list(run_dir.rglob(".tmp-*")), "a temporary checkpoint directory was left behind"


@pytest.mark.parametrize("verb", list(RECIPES))
def test_interrupted_run_resumes_exactly(verb, nano_model, data_dir, tmp_path, capsys):
    recipe, overrides, data = RECIPES[verb]

    def config(out):
        return load_config(
            recipe.Config,
            None,
            overrides(
                nano_model,
                data_dir / data,
                out,
                "train.max_steps=8",
                "train.save_every=3",
                "train.keep_checkpoints=1",
            ),
        )

    # A: uninterrupted
    a = tmp_path / "a"
    final_a = recipe.train(config(a))
    check_checkpoints(a, [6])  # step-3 was pruned by keep_checkpoints=1; no checkpoint at the last step

    # B: stopped after step 4, past the step-3 checkpoint
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        recipe.train(config(b), callbacks=[Interrupt(at=4)])
    check_checkpoints(b, [3])
    assert not (b / "final").exists()
    assert [m["step"] for m in read_metrics(b)] == [1, 2, 3, 4]

    # B again, same command: resumes from step 3 and redoes step 4
    capsys.readouterr()
    seen = Interrupt()
    final_b = recipe.train(config(b), callbacks=[seen])
    assert f"resumed from {b / 'checkpoints' / 'step-3'} at step 3" in capsys.readouterr().out
    assert seen.steps == [4, 5, 6, 7, 8]
    check_checkpoints(b, [6])

    assert_same_weights(load_weights(final_a), load_weights(final_b), atol=1e-6)
    metrics_a, metrics_b = read_metrics(a), read_metrics(b)
    assert [m["step"] for m in metrics_b] == list(range(1, 9)), "metrics.jsonl has duplicated steps"
    for ma, mb in zip(metrics_a, metrics_b, strict=True):
        assert mb["loss"] == pytest.approx(ma["loss"], rel=1e-6, abs=1e-7), (ma, mb)
        assert mb["lr"] == pytest.approx(ma["lr"], rel=1e-9), "the LR schedule was not restored"


def test_resume_false_starts_over(nano_model, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    base = sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=4", "train.save_every=2")
    with pytest.raises(KeyboardInterrupt):
        sft.train(load_config(sft.Config, None, base), callbacks=[Interrupt(at=3)])
    seen = Interrupt()
    capsys.readouterr()
    sft.train(load_config(sft.Config, None, [*base, "train.resume=false"]), callbacks=[seen])
    assert "resumed" not in capsys.readouterr().out
    assert seen.steps == [1, 2, 3, 4]
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3, 4], "lines of the abandoned run were kept"


def test_resume_false_sets_old_checkpoints_aside(nano_model, data_dir, tmp_path):
    out = tmp_path / "run"
    base = sft_overrides(nano_model, data_dir / "demos.jsonl", out, "train.max_steps=4", "train.save_every=2")
    with pytest.raises(KeyboardInterrupt):
        sft.train(load_config(sft.Config, None, base), callbacks=[Interrupt(at=3)])
    sft.train(
        load_config(sft.Config, None, [*base, "train.resume=false"]),
    )
    assert (out / "checkpoints.old-0" / "step-2" / "state.json").is_file(), "the earlier checkpoint was lost"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-2"], (
        "only the new run's checkpoint remains"
    )
