"""bench/toy_peer.py: how a toy benchmark runs its peer row and turns it into a ratio.

The peer's venv is replaced by a fake python that answers as the TRL worker does (one ``RESULT``
line), so the driver's side is tested without TRL: the row it sends, the environment the peer
sees, the fields and ratios it returns, and its failures.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import toy_peer  # noqa: E402

FAKE = """#!{python}
import json, os, sys
row = json.loads(sys.argv[2])
if row["algo"] == "reward":
    print("no result", flush=True)
    sys.exit(3)
settings = {{"row": row, "pythonpath": os.environ.get("PYTHONPATH"), "omp": os.environ["OMP_NUM_THREADS"]}}
print("RESULT " + json.dumps({{"step_s": 0.5, "step_times": [0.4, 0.5, 0.6], "cpu_s": 0.8,
      "cpu_times": [0.8], "other_load": 0.1, "peak_rss_mb": 100.0, "settings": settings}}))
"""


@pytest.fixture
def fake_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for venv in set(toy_peer.VENVS.values()):
        python = tmp_path / venv / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(FAKE.format(python=sys.executable))
        python.chmod(python.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(toy_peer, "ROOT", tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/the/project/src")
    return tmp_path


def test_peer_row_carries_the_precision_and_the_ratios_come_from_both_sides(fake_peer: Path) -> None:
    peer = toy_peer.run_peer(
        "grpo", "bf16", Path("/m"), {"prompts": "p.jsonl"}, fake_peer, 4, 1, 3, 1, samples=4, attn="eager"
    )
    row = peer["peer_settings"]["row"]
    assert (row["dtype"], row["bf16"], row["attn"], row["prompts"], row["samples"]) == (
        "float32", True, "eager", 4, 4,
    )  # fmt: skip
    assert peer["peer_settings"]["pythonpath"] is None  # the peer must not import the project
    assert peer["peer_settings"]["omp"] == "1"
    assert peer["peer_per_s"] == pytest.approx(16 / 0.5)  # 4 prompts x 4 completions a step
    ours = {"rollouts_per_s": 48.0, "cpu_s": 0.4}
    toy_peer.compare(ours, peer, "rollouts_per_s")
    assert ours["vs_peer"] == pytest.approx(48.0 / 32.0)
    assert ours["vs_peer_cpu"] == pytest.approx(0.8 / 0.4)


def test_fp32_and_bf16_weights_rows_reach_the_peer_as_such(fake_peer: Path) -> None:
    for precision, expected in (("fp32", ("float32", False)), ("bf16-weights", ("bfloat16", True))):
        peer = toy_peer.run_peer("dpo", precision, Path("/m"), {}, fake_peer, 8, 1, 3, 1)
        row = peer["peer_settings"]["row"]
        assert (row["dtype"], row["bf16"], row["attn"]) == (*expected, "sdpa")


def test_a_peer_that_fails_stops_the_benchmark_naming_the_row(fake_peer: Path, capsys) -> None:
    with pytest.raises(SystemExit, match="peer toy-reward-fp32 failed \\(exit 3\\)"):
        toy_peer.run_peer("reward", "fp32", Path("/m"), {}, fake_peer, 16, 1, 3, 1)
    assert "no result" in capsys.readouterr().err


def test_a_missing_peer_venv_names_the_make_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toy_peer, "ROOT", tmp_path)
    with pytest.raises(SystemExit, match="make bench-peers"):
        toy_peer.run_peer("ppo", "fp32", Path("/m"), {}, tmp_path, 16, 1, 3, 1)
