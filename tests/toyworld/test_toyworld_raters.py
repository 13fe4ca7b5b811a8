"""Simulated raters: exact ranking at zero noise, ties, biases, careless share, record format."""

import math
import random

import pytest

from rlhf.toyworld import Rater, RaterPool, Task, World, gold_score
from rlhf.toyworld.raters import competition_ranks, confidence_markers

ADD = Task(
    prompt="What is 3 + 5?\n",
    family="arithmetic",
    answer="8",
    should_decline=False,
    question="What is 3 + 5?",
    expected=("8",),
    ideal_words=7,
)
SHORT, LONG = "8", "The answer is 8."  # equally correct, both within the ideal length: gold 1.0 each


def _prefers(rater: Rater, a: str, b: str, trials: int = 1000, seed: int = 0) -> float:
    rng = random.Random(seed)
    return sum(rater.rank(ADD, [a, b], rng)[0] == 1 for _ in range(trials)) / trials


def test_competition_ranks():
    assert competition_ranks([0.5, 2.0, 0.5, -1.0]) == [2, 1, 2, 4]


def test_zero_noise_unbiased_rater_ranks_by_gold_exactly():
    responses = ["9", "", "The answer is 8. I hope this helps you a lot today.", "8"]
    golds = [gold_score(ADD, r) for r in responses]
    assert golds == pytest.approx([0.0, -1.0, 0.75, 1.0])
    rater, rng = Rater("r", noise=0.0), random.Random(0)
    for _ in range(20):
        order = rng.sample(range(4), 4)
        shuffled = [responses[i] for i in order]
        assert rater.rank(ADD, shuffled, rng) == competition_ranks([golds[i] for i in order])
    assert rater.rank(ADD, responses, rng) == [3, 4, 2, 1]


def test_identical_responses_tie_and_ranks_are_valid():
    rng = random.Random(0)
    for rater in (Rater("r", noise=1.0), Rater("c", careless=True)):
        for _ in range(200):
            ranks = rater.rank(ADD, ["8", "9", "8", " 8 ", "7"], rng)
            assert ranks[0] == ranks[2] == ranks[3]
            assert ranks[1] != ranks[0] and ranks[4] != ranks[0] and ranks[1] != ranks[4]
            distinct = rater.rank(ADD, ["8", "9", "The answer is 8.", "", "10"], rng)
            assert sorted(distinct) == [1, 2, 3, 4, 5]


def test_noise_gives_bradley_terry_preference_probability():
    # gold 1.0 vs 0.0 with Gumbel scale 1: P(right first) = sigmoid(1) = 0.731
    assert _prefers(Rater("r", noise=1.0), "8", "9", trials=4000) == pytest.approx(
        1 / (1 + math.exp(-1)), abs=0.03
    )


def test_length_bias_prefers_longer_of_equally_correct_answers():
    assert gold_score(ADD, SHORT) == gold_score(ADD, LONG) == 1.0
    unbiased = _prefers(Rater("u", noise=0.5), LONG, SHORT)
    biased = _prefers(Rater("b", noise=0.5, length_bias=0.5), LONG, SHORT)
    assert 0.44 < unbiased < 0.56
    # 0.5 * (log 5 - log 2) / 0.5 = 0.916 -> sigmoid = 0.714
    assert biased == pytest.approx(1 / (1 + math.exp(-math.log(5 / 2))), abs=0.04)


def test_confidence_bias_rewards_confident_tone():
    assert confidence_markers("Certainly! Definitely 8, of course.") == 3
    confident = "Certainly! 8"
    assert gold_score(ADD, confident) == gold_score(ADD, SHORT)
    assert _prefers(Rater("c", noise=0.5, confidence_bias=0.5), confident, SHORT) > 0.65
    assert 0.4 < _prefers(Rater("c", noise=0.5), confident, SHORT) < 0.6


def test_careless_rater_ignores_quality():
    assert _prefers(Rater("c", careless=True), "8", "") == pytest.approx(0.5, abs=0.06)
    assert _prefers(Rater("r", noise=0.5), "8", "") > 0.95


def test_pool_careless_share_and_jitter():
    pool = RaterPool.build(seed=0, n_raters=40, share_careless=0.25, noise=0.5, length_bias=0.2, spread=0.5)
    assert sum(r.careless for r in pool.raters) == 10
    assert len({r.annotator for r in pool.raters}) == 40
    assert all(0.25 <= r.noise <= 0.75 and 0.1 <= r.length_bias <= 0.3 for r in pool.raters)
    assert RaterPool.build(seed=0, n_raters=40).raters == RaterPool.build(seed=0, n_raters=40).raters
    with pytest.raises(ValueError, match="share_careless"):
        RaterPool.build(share_careless=1.5)


def test_label_records_follow_the_ranking_format():
    world = World.build(seed=0, n_sft=10, n_rating=10, n_rl=10, n_eval=10)
    tasks = world.tasks("rating")
    responses = [[t.statement, t.answer or "I can't help.", "What is 2 + 2?", ""] for t in tasks]
    pool = RaterPool.build(seed=0, n_raters=5)
    records = pool.label(tasks, responses, seed=1, raters_per_prompt=3)
    assert len(records) == 30
    ids = {r.annotator for r in pool.raters}
    for i, rec in enumerate(records):
        assert set(rec) == {"prompt", "responses", "ranks", "annotator"}
        assert rec["prompt"] == tasks[i // 3].prompt and rec["responses"] == responses[i // 3]
        assert len(rec["ranks"]) == 4 and all(isinstance(r, int) and 1 <= r <= 4 for r in rec["ranks"])
        assert min(rec["ranks"]) == 1 and rec["annotator"] in ids
    for i in range(0, 30, 3):
        assert len({rec["annotator"] for rec in records[i : i + 3]}) == 3
    assert pool.label(tasks, responses, seed=1, raters_per_prompt=3) == records
    with pytest.raises(ValueError, match="needs >= 2"):
        pool.label(tasks[:1], [["only one"]])


def test_label_records_parse_with_the_data_layer():
    records = pytest.importorskip("rlhf.data.records")
    world = World.build(seed=0, n_sft=5, n_rating=5, n_rl=5, n_eval=5)
    tasks = world.tasks("rating")
    for rec in RaterPool.build().label(tasks, [[t.statement, "9", t.statement] for t in tasks]):
        parsed = records.parse_ranking(rec, "test")
        assert parsed.ranks == rec["ranks"] and parsed.ranks[0] == parsed.ranks[2]
