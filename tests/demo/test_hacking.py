"""The reward-hacking stage's pieces: biased raters prefer long, confident answers, and
proxy_vs_gold condenses a PPO run's metrics into windows."""

import json

import pytest

from rlhf.demo.hacking import proxy_vs_gold
from rlhf.demo.report import proxy_vs_gold as render
from rlhf.toyworld import RaterPool, World


def test_proxy_vs_gold_averages_consecutive_windows_of_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        {
            "step": s,
            "kl": s / 10,
            "score": s,
            "gold": -s,
            "response_length": 2 * s,
            "repeated_bigrams": s / 100,
        }
        for s in range(1, 8)
    ]
    lines.insert(3, {"step": 0, "note": "a line without gold (not a demo run) is left out"})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    windows = proxy_vs_gold(path, windows=3)
    assert [w["steps"] for w in windows] == ["1-2", "3-5", "6-7"]  # 7 steps: 2, 3 and 2 of them
    expected = {"steps": "3-5", "kl": 0.4, "proxy": 4.0, "gold": -4.0, "length": 8.0, "repeated": 0.04}
    assert windows[1] == pytest.approx(expected)
    assert [w["steps"] for w in proxy_vs_gold(path, windows=10)] == [
        str(s) + "-" + str(s) for s in range(1, 8)
    ]
    text = "\n".join(render({"ppo (biased raters)": windows}))
    assert "proxy +1.500 -> +6.500, gold -1.500 -> -6.500, 3.0 -> 13.0 tokens" in text
    assert "| ppo (biased raters) | 3-5   | 0.40 | +4.000 | -4.000 | 8.0    | 0.040    | -       |" in text

    # a run watched by a second reward model (rewards.heldout_model) gets its column and summary
    watched = [{**x, "score_heldout": -x["score"] / 2} for x in lines if "gold" in x]
    path.write_text("\n".join(json.dumps(x) for x in watched) + "\n")
    windows = proxy_vs_gold(path, windows=3)
    assert windows[2]["heldout"] == pytest.approx(-3.25)
    text = "\n".join(render({"ppo (biased raters)": windows}))
    assert "gold -1.500 -> -6.500, fair RM -0.750 -> -3.250, 3.0" in text


def test_biased_raters_rank_long_confident_answers_higher_than_fair_ones():
    world = World.build(0, n_rating=40)
    tasks = [t for t in world.tasks("rating") if t.answer][:40]
    answers = [[t.answer, f"Certainly! {t.answer} I hope this helps, I hope this helps."] for t in tasks]
    first = {}
    for name, bias in (("fair", 0.0), ("biased", 1.0)):
        pool = RaterPool.build(seed=0, length_bias=bias, confidence_bias=bias, noise=0.1, share_careless=0)
        records = pool.label(tasks, answers, seed=0, raters_per_prompt=1)
        first[name] = sum(r["ranks"][1] == 1 for r in records) / len(records)  # the padded answer on top
    assert first["fair"] < 0.2 < 0.8 < first["biased"]
