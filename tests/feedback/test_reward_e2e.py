"""The export trains a reward model with no conversion step: raters rank through the server's own
code, `rlhf label export` writes rankings and pairs, and `rlhf reward` trains on each (nano model,
a few steps, seconds)."""

from __future__ import annotations

import json
import math
import random

import pytest
from sqlalchemy import select

from rlhf.feedback import assign
from rlhf.feedback.auth import create_rater
from rlhf.feedback.cli import main as label_main
from rlhf.feedback.db import Rater, Task
from rlhf.feedback.io import import_records
from rlhf.feedback.projects import create_project
from rlhf.feedback.submit import Submission, record

pytest.importorskip("torch")
OFF_TOPIC = " I do not know, maybe ask again later."


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def answers(a: int, b: int) -> list[str]:
    """correct, repetitive, off-topic: the order honest raters rank them in"""
    return [f" {a + b}.", " " + " ".join([str(a + b)] * 5) + ".", OFF_TOPIC]


@pytest.fixture(scope="module")
def one_thread():
    """A nano model gains nothing from two threads, and on a busy 2-core machine two OpenMP threads
    waiting on each other make each step ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def nano(tmp_path_factory, one_thread):
    """A ~0.1M-parameter GPT-2 with a 300-token BPE trained on this test's text (nothing downloaded)."""
    from rlhf.models.tiny import make_tiny_checkpoint

    texts = [t for a in range(10) for b in range(10) for t in [question(a, b), *answers(a, b)]]
    return make_tiny_checkpoint(tmp_path_factory.mktemp("nano"), texts, vocab_size=300)


def _label(db, project_id: int, name: str, rng: random.Random, careless: bool) -> None:
    """A simulated rater: correct > repetitive > off-topic, or (careless) a random order."""
    with db.read() as s:
        rater_id = s.scalar(select(Rater.id).where(Rater.name == name))
    while (view := assign.next_task(db, project_id, rater_id, rng)) is not None:
        with db.read() as s:
            responses = s.get(Task, view.task_id).responses
        truth = [3 if r == OFF_TOPIC else 1 if r.count(" ") == 1 else 2 for r in responses]
        ranks = rng.sample([1, 2, 3], 3) if careless else truth
        shown = [ranks[i] for i in view.display_order]
        record(db, project_id, rater_id, Submission(f"{name}-{view.task_id}-e2e", view.task_id, ranks=shown))


def test_export_trains_the_reward_model(db, tmp_path, nano, one_thread, capsys):
    from rlhf.cli import main as rlhf_main

    create_project(db, "arith", overlap=3, gold_fraction=0.0)
    rng = random.Random(0)
    records = []
    for i in range(16):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        responses = answers(a, b)
        rng.shuffle(responses)
        records.append((f"c:{i}", {"prompt": question(a, b), "responses": responses, "id": i}))
    import_records(db, "arith", records)
    for name, careless in (("ann", False), ("bob", False), ("cy", True)):
        create_rater(db, name)
        _label(db, 1, name, random.Random(name), careless)

    rankings, pairs = tmp_path / "rankings.jsonl", tmp_path / "pairs.jsonl"
    assert label_main(["export", "--db", db.url, "--project", "arith", "--out", str(rankings)]) == 0
    assert (
        label_main(
            [
                "export",
                "--db",
                db.url,
                "--project",
                "arith",
                "--kind",
                "pairs",
                "--weight",
                "agreement",
                "--out",
                str(pairs),
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in rankings.read_text().splitlines()]
    assert len(rows) == 48 and set(rows[0]) == {"prompt", "responses", "ranks", "annotator"}
    assert all(0.5 < json.loads(x)["prob"] <= 1 for x in pairs.read_text().splitlines())

    for train in (rankings, pairs):
        out = tmp_path / f"run-{train.stem}"
        code = rlhf_main(
            [
                "reward",
                f"model.path={nano}",
                f"data.train={train}",
                f"train.output_dir={out}",
                "data.max_length=64",
                "train.batch_size=8",
                "train.max_steps=4",
                "train.lr=3e-3",
                "train.log_every=1",
                "train.save_every=0",
            ]
        )
        assert code == 0, capsys.readouterr().err
        metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        losses = [m["loss"] for m in metrics if "loss" in m]
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
        assert (out / "final" / "config.json").is_file()
        counts = json.loads((out / "data.json").read_text())["train"]
        assert counts["records"] == (48 if train == rankings else len(pairs.read_text().splitlines()))
