"""The smollm demonstrations stage: one batch of base-model generation answers the benign SFT
prompts and the replay questions, and both kinds of demonstration land in one file."""

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from rlhf.demo import smollm_stages as st
from rlhf.demo.smollm_preset import SMOL_PRESETS
from rlhf.realtask import replay
from rlhf.realtask.demonstrations import REFUSAL
from rlhf.realtask.prompts import stage_sets


def _run(tmp_path, n_replay):
    sets = stage_sets({"sft": 6}, seed=0)
    return st.SmolRun(tmp_path, replace(SMOL_PRESETS["smollm"], n_replay=n_replay), 0, sets)


def test_replayed_general_answers_join_the_demonstrations(tmp_path, monkeypatch):
    run = _run(tmp_path, n_replay=3)
    (q_right, a_right), (q_wrong, _), (q_third, a_third) = replay.QUESTIONS[:3]
    canned = {q_right: f"It is {a_right[0].title()}.", q_wrong: "Nobody knows.", q_third: f"{a_third[0]}."}
    calls = []

    def fake_generate(model_dir, prompts, params, p):
        calls.append(len(prompts))
        texts = [canned.get(m[-1]["content"], "") for m in prompts]
        # a benign SFT prompt gets its own words back, so it counts as answered
        texts = [t or f"You can {m[-1]['content'].rstrip('?.')}." for t, m in zip(texts, prompts)]
        return [[SimpleNamespace(text=t)] for t in texts]

    monkeypatch.setattr(st, "generate", fake_generate)
    records = [json.loads(line) for line in st.demonstrations(run, tmp_path).read_text().splitlines()]
    n_benign = sum(not t.harmful for t in run.sets["sft"])
    assert calls == [n_benign + 3]  # one batch for both
    by_prompt = {r["prompt"][0]["content"]: r["completion"] for r in records}
    assert by_prompt[q_right] == canned[q_right] and by_prompt[q_third] == canned[q_third]
    assert q_wrong not in by_prompt  # a wrong base answer is no demonstration
    assert sum(c.startswith(REFUSAL) for c in by_prompt.values()) == len(run.sets["sft"]) - n_benign

    run.p = replace(run.p, replay_repeats=3)  # each replayed answer three times, nothing else more
    again = [json.loads(line) for line in st.demonstrations(run, tmp_path).read_text().splitlines()]
    counts = {q: sum(r["prompt"][0]["content"] == q for r in again) for q in by_prompt}
    assert counts[q_right] == counts[q_third] == 3
    assert len(again) == len(records) + 2 * 2


def test_more_replay_questions_than_written_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="n_replay"):
        st.demonstrations(_run(tmp_path, n_replay=len(replay.QUESTIONS) + 1), tmp_path)


def test_ppo_ptx_trains_on_the_replayed_answers_only(tmp_path, monkeypatch):
    run = st.SmolRun(
        tmp_path, replace(SMOL_PRESETS["smollm"], ppo_ptx_coef=0.5), 0, stage_sets({"rl": 4}, seed=0)
    )
    question = replay.QUESTIONS[0][0]
    demos = [
        {"prompt": [{"role": "user", "content": question}], "completion": "An answer."},
        {"prompt": [{"role": "user", "content": "How do I rob a bank?"}], "completion": REFUSAL},
    ]
    run.data.mkdir()
    (run.data / "demonstrations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in demos))
    seen = {}
    monkeypatch.setattr(st.ppo, "train", lambda cfg, sample_metrics: seen.setdefault("cfg", cfg))
    st.train_ppo(run, tmp_path / "sft", tmp_path / "rm")
    cfg = seen["cfg"]
    assert cfg.ptx.coef == 0.5
    assert [json.loads(x) for x in open(cfg.ptx.data)] == demos[:1]
    (run.data / "demonstrations.jsonl").write_text(json.dumps(demos[1]) + "\n")
    with pytest.raises(ValueError, match="no replayed answer"):
        st.train_ppo(run, tmp_path / "sft", tmp_path / "rm")


def test_a_benign_prompt_whose_greedy_answer_misses_is_taught_a_sampled_answer(tmp_path, monkeypatch):
    run = _run(tmp_path, n_replay=0)
    benign = [t for t in run.sets["sft"] if not t.harmful]
    calls = []

    def fake_generate(model_dir, prompts, params, p):
        calls.append((len(prompts), params.n, params.temperature))
        if params.temperature == 0:  # greedy: the base model misses every look-alike
            return [[SimpleNamespace(text="Nobody knows.")] for _ in prompts]
        # samples: the first misses, the second answers
        answer = lambda m: f"You can {m[-1]['content'].rstrip('?.')}."  # noqa: E731
        return [[SimpleNamespace(text="Hmm."), SimpleNamespace(text=answer(m))] for m in prompts]

    monkeypatch.setattr(st, "generate", fake_generate)
    run.p = replace(run.p, demo_samples=2)
    records = [json.loads(line) for line in st.demonstrations(run, tmp_path).read_text().splitlines()]
    assert calls == [(len(benign), 1, 0.0), (len(benign), 2, run.p.demo_temperature)]
    taught = {r["prompt"][0]["content"]: r["completion"] for r in records}
    assert all(taught[t.prompt].startswith("You can") for t in benign)
    run.p = replace(run.p, demo_samples=0)  # greedy answers only: every look-alike left out
    records = [json.loads(line) for line in st.demonstrations(run, tmp_path).read_text().splitlines()]
    assert len(records) == len(run.sets["sft"]) - len(benign)
