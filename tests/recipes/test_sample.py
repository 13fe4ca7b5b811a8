"""`rlhf sample` and `rlhf best-of-n` on the nano model."""

from __future__ import annotations

import json
import math

import pytest

from rlhf.cli import main
from rlhf.config import load_config
from rlhf.data.records import load_records
from rlhf.recipes import best_of_n, reward

from .helpers import question, reward_overrides, write_jsonl


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    return write_jsonl(d / "prompts.jsonl", [{"prompt": question(a, 3)} for a in range(6)])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sample_writes_candidate_sets_that_become_a_ranking_file(nano_model, prompts, tmp_path):
    out = tmp_path / "cands.jsonl"
    args = ["sample", f"model.path={nano_model}", f"sample.prompts={prompts}", f"sample.output={out}"]
    assert main([*args, "sample.n=3", "sample.max_new_tokens=6"]) == 0
    rows = read_jsonl(out)
    assert [r["prompt"] for r in rows] == [question(a, 3) for a in range(6)]
    assert all(len(r["responses"]) == 3 for r in rows)
    assert len({r["id"] for r in rows}) == 6
    first = out.read_text()
    assert main([*args, "sample.n=3", "sample.max_new_tokens=6"]) == 0
    assert out.read_text() == first  # same seed, same samples
    # a person's ranking turns the candidate set into the ranking format `rlhf reward` reads
    ranked = write_jsonl(tmp_path / "ranked.jsonl", [{**r, "ranks": [1, 2, 3]} for r in rows])
    assert len(load_records(str(ranked), "ranking")) == 6


def test_best_of_n_keeps_the_highest_scored_response(nano_model, data_dir, prompts, tmp_path):
    rm = reward.train(
        load_config(
            reward.Config,
            None,
            reward_overrides(nano_model, data_dir / "rankings.jsonl", tmp_path / "rm", "train.max_steps=5"),
        )
    )
    out = tmp_path / "bon"
    cfg = load_config(
        best_of_n.Config,
        None,
        [
            f"model.path={nano_model}",
            f"sample.prompts={prompts}",
            "sample.n=4",
            "sample.max_new_tokens=6",
            f"best_of_n.reward_model={rm}",
            f"best_of_n.output_dir={out}",
        ],
    )
    best_of_n.best_of_n(cfg)
    scored, best = read_jsonl(out / "scored.jsonl"), read_jsonl(out / "best.jsonl")
    assert len(scored) == len(best) == 6
    for s, b in zip(scored, best):
        assert len(s["scores"]) == 4
        assert s["scores"][s["best"]] == max(s["scores"])
        assert b["completion"] == s["responses"][s["best"]]
    assert len(load_records(str(out / "best.jsonl"), "demonstration")) == 6  # `rlhf sft` reads it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kl_best_of_n"] == pytest.approx(math.log(4) - 3 / 4)
    assert summary["mean_best_score"] >= summary["mean_score"]


def test_best_worst_pair_by_hand():
    pair = best_of_n.best_worst_pair
    assert pair("q", ["a", "b", "c"], [0.5, 2.0, -1.0]) == {"prompt": "q", "chosen": "b", "rejected": "c"}
    assert pair("q", ["a", "b", "c"], [1.0, 1.0, 1.0]) is None  # no preference
    # the same text scored twice (ended by EOS once, cut once): never paired with itself
    assert pair("q", ["a", "b", "a"], [3.0, 1.0, -2.0]) == {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert pair("q", ["a", "a"], [3.0, -2.0]) is None
    assert pair("q", ["a", "b", "a"], [3.0, 3.0, -2.0]) is None  # the other text scores as high


@pytest.mark.parametrize(
    "args,message",
    [
        (["best-of-n", "sample.prompts=P"], "best_of_n.reward_model"),
        (["sample"], "sample.prompts"),
        (["sample", "sample.prompts=P", "sample.n=0"], "sample.n"),
    ],
)
def test_bad_sampling_configs_exit_2(args, message, nano_model, prompts, tmp_path, capsys):
    args = [a.replace("=P", f"={prompts}") for a in args]
    assert main([*args, f"model.path={nano_model}"]) == 2
    assert message in capsys.readouterr().err
