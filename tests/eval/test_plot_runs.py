"""`rlhf plot`: PNG and SVG curves of a run's metrics.jsonl, runs overlaid, x = step or KL."""

import json

import pytest

from rlhf.cli import main
from rlhf.eval.plot_runs import group_of

pytest.importorskip("matplotlib")


def write_run(path, rows):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rl_rows(scale):
    return [
        {"step": s, "kl": 0.1 * s, "score": scale * s, "gold": 0.5 - 0.01 * s, "loss": 1 / s, "entropy": 2.0,
         "clipfrac": 0.1, "response_length": 10 + s, "eval_nll": 3.0, "lr": 1e-4}
        for s in range(1, 6)
    ]  # fmt: skip


def test_plot_writes_png_and_svg_per_group_with_runs_overlaid(tmp_path, capsys):
    a = write_run(tmp_path / "a", rl_rows(1.0))
    b = write_run(tmp_path / "b", rl_rows(2.0))
    out = tmp_path / "plots"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for group in ("loss", "reward", "kl", "length", "entropy", "clipping", "eval", "optimisation"):
        assert {f"{group}.png", f"{group}.svg"} <= names, group
    assert (out / "reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (out / "reward.svg").read_text()
    assert "<svg" in svg and "<path" in svg
    assert "wrote 16 files" in capsys.readouterr().out
    # --x kl: the same runs against their logged KL; the default folder is the first run's plots/
    assert main(["plot", str(a), "--x", "kl"]) == 0
    assert (a / "plots" / "reward.png").is_file() and not (a / "plots" / "kl.png").exists()


def test_plot_errors_name_the_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no metrics.jsonl" in capsys.readouterr().err
    sft = write_run(tmp_path / "sft", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    assert main(["plot", str(sft), "--x", "kl"]) == 2
    assert "sft: metrics.jsonl logs no 'kl'" in capsys.readouterr().err


def test_metrics_are_grouped_by_what_they_measure():
    assert group_of("value_loss") == "loss" and group_of("value_clipfrac") == "clipping"
    assert group_of("approx_kl") == "kl" and group_of("eval_nll") == "eval"
    assert group_of("score_raw") == "reward" and group_of("accuracy") == "accuracy"
    assert group_of("rollouts_per_s") == "throughput" and group_of("time_train") == "throughput"
