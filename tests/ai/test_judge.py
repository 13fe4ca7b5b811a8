"""The local judge on a nano model, the position swap, candidate sets -> labels, and `rlhf judge`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhf.feedback.judge import Comparison, Judgement, LocalJudge, combine_orders, position_stats
from rlhf.feedback.judge.labels import Item, comparisons, to_records

PAIRS = [
    Comparison("What is 2 + 3?", " 5.", " 6."),
    Comparison("What is 7 + 1?", "The answer is 8.", " 9."),
    Comparison("What is 0 + 0?", " 0.", "The answer is 1."),
]


@pytest.fixture(scope="module")
def model_and_tokenizer(nano_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(nano_dir).eval(), AutoTokenizer.from_pretrained(nano_dir)


class PositionBiased(torch.nn.Module):
    """The model with ``bias`` added to the logit of one token: a judge that favours that option
    whatever the content (Zheng et al. 2023's position bias, in its simplest form)."""

    def __init__(self, model, token: int, bias: float):
        super().__init__()
        self.inner, self.token, self.bias = model, token, bias
        self.config, self.device = model.config, model.device

    def forward(self, **kw):
        out = self.inner(**kw)
        out.logits[..., self.token] += self.bias
        return out


def test_combine_orders_hand_worked():
    assert combine_orders(0.8, 0.2).prob == pytest.approx(0.8)  # consistent: both orders say a, 0.8
    assert combine_orders(0.9, 0.9).prob == pytest.approx(0.5)  # position 1 both times: no preference
    # log-odds mean: logit 0.9 = 2.197, logit 0.4 = -0.405 -> (2.197 + 0.405) / 2 = 1.301 -> 0.786
    assert combine_orders(0.9, 0.4).prob == pytest.approx(1 / (1 + math.exp(-1.3013)), abs=1e-4)
    assert combine_orders(1.0, 0.0).prob > 0.999 and combine_orders(1.0, 1.0).prob == 0.5  # hard verdicts
    stats = position_stats([Judgement(0.5, 0.9, 0.8), Judgement(0.7, 0.9, 0.3)])
    assert stats == {"comparisons": 2, "same_position_rate": 0.5, "first_position_rate": 0.75}


@pytest.mark.parametrize("chat", [True, False])
def test_local_judge_probabilities_are_symmetric(model_and_tokenizer, chat):
    model, tok = model_and_tokenizer
    judge = LocalJudge(model, tok, chat=chat)
    swapped = [Comparison(c.prompt, c.b, c.a, c.criterion) for c in PAIRS]
    results = judge.judge(PAIRS + swapped)
    n = len(PAIRS)
    for r, s in zip(results[:n], results[n:]):
        assert 0 <= r.prob <= 1
        assert r.prob + s.prob == pytest.approx(1.0, abs=1e-12)
        assert (r.forward, r.backward) == pytest.approx((s.backward, s.forward))  # same prompts, other half
    assert judge.stats["forwards"] == 4 * n
    stats = position_stats(results)
    assert stats["comparisons"] == 2 * n and 0 <= stats["same_position_rate"] <= 1


def test_a_constant_position_bias_is_cancelled_exactly(model_and_tokenizer):
    model, tok = model_and_tokenizer
    fair = LocalJudge(model, tok)
    biased = LocalJudge(PositionBiased(model, fair.id_first, 6.0), tok)
    want, got = fair.judge(PAIRS), biased.judge(PAIRS)
    for w, g in zip(want, got):
        assert g.forward > w.forward + 0.2 and g.backward > w.backward + 0.2  # the bias shows in each order
        assert g.prob == pytest.approx(w.prob, abs=1e-5)  # and is gone after the swap
    assert position_stats(got)["same_position_rate"] == 1.0  # "A" every time: reported as such


class ShortestWins:
    """A judge that prefers the shorter response, with known probabilities."""

    name = "shortest"

    def judge(self, comps):
        out = []
        for c in comps:
            p = 1 / (1 + math.exp(len(c.a) - len(c.b)))
            out.append(Judgement(p, p, 1 - p))
        return out


def test_candidate_sets_become_rankings_by_mean_win_probability_and_pairs():
    items = [Item("q", ["ccc", "a", "bb", "a"], "t1")]
    comps, index, counts = comparisons(items)
    assert counts.comparisons == 5 and counts.identical == 1  # C(4,2) = 6, "a" vs "a" not asked
    rankings, pairs = to_records(
        items, index, ShortestWins().judge(comps), "ai:shortest", counts, "confidence"
    )
    (r,) = rankings
    assert r["ranks"] == [4, 1, 3, 1] and r["annotator"] == "ai:shortest" and r["id"] == "t1"
    assert r["probs"][1][3] == 0.5 and r["probs"][1][0] == pytest.approx(1 / (1 + math.exp(-2)), abs=1e-6)
    assert r["probs"][0][1] + r["probs"][1][0] == pytest.approx(1)
    assert len(pairs) == 5 and all(p["prob"] > 0.5 and len(p["chosen"]) < len(p["rejected"]) for p in pairs)
    assert all(p["weight"] == pytest.approx(2 * p["prob"] - 1, abs=1e-6) for p in pairs)


def test_constitution_draws_a_principle_per_comparison():
    from rlhf.feedback.constitution import load_constitution

    criteria = load_constitution("default").criteria()
    items = [Item("q", [f"r{i}" for i in range(6)])]
    comps, index, _ = comparisons(items, criteria, seed=1)
    asked = {c.criterion for c in comps}
    assert len(comps) == 15 and len(asked) > 1 and asked <= {q for _, q in criteria}
    _, pairs = to_records(items, index, ShortestWins().judge(comps), "ai:x", comparisons(items)[2])
    names = {name for name, _ in criteria}
    assert all(p["principle"] in names for p in pairs)


def test_rlhf_judge_local_writes_labels_rlhf_reward_trains_on(nano_dir, tmp_path):
    from rlhf.cli import main
    from rlhf.config import load_config
    from rlhf.recipes import reward

    cands = tmp_path / "cands.jsonl"
    rows = [
        {"id": f"q{a}", "prompt": f"What is {a} + 1?", "responses": [f" {a + 1}.", " 0.", "The answer is 3."]}
        for a in range(3)
    ]
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ranked = tmp_path / "ref.jsonl"
    ranked.write_text(
        "".join(json.dumps({**r, "ranks": [1, 2, 3], "annotator": "human"}) + "\n" for r in rows)
    )
    out, pairs = tmp_path / "ai.jsonl", tmp_path / "ai_pairs.jsonl"
    assert (
        main(
            [
                "judge",
                f"model.path={nano_dir}",
                f"judge.input={cands}",
                f"judge.rankings_output={out}",
                f"judge.pairs_output={pairs}",
                f"judge.reference={ranked}",
                "judge.constitution=default",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "ai.report.json").read_text())
    assert report["counts"]["comparisons"] == 9 and report["agreement"]["tasks"] == 3
    assert report["agreement"]["ai_vs_reference"]["n"] == 9
    assert 0 <= report["position"]["same_position_rate"] <= 1
    for data in (out, pairs):  # `rlhf reward` reads both label files as they are
        cfg = load_config(
            reward.Config,
            None,
            [
                f"model.path={nano_dir}",
                f"data.train={data}",
                f"train.output_dir={tmp_path / data.stem}",
                "train.max_steps=1",
                "train.batch_size=2",
                "data.max_length=64",
            ],
        )
        assert (reward.train(cfg) / "config.json").is_file()


def test_rlhf_judge_config_errors(tmp_path, capsys):
    from rlhf.cli import main

    assert main(["judge", "judge.input=x.jsonl"]) == 2
    assert "judge.rankings_output or judge.pairs_output" in capsys.readouterr().err
    assert main(["judge", "judge.kind=endpoint", "judge.input=x.jsonl", "judge.pairs_output=o.jsonl"]) == 2
    assert "endpoint.url and endpoint.model" in capsys.readouterr().err
    bad = tmp_path / "t.yaml"
    bad.write_text("text: 'no slots here'\n")
    assert main(["judge", "judge.input=x.jsonl", "judge.pairs_output=o.jsonl", f"judge.template={bad}"]) == 2
    assert "lacks the placeholder(s) {prompt}, {first}, {second}" in capsys.readouterr().err
