"""`rlhf reward` and `rlhf dpo` train on UltraFeedback-binarized data as it is published: a saved
DatasetDict with `train_prefs` / `test_prefs` splits whose `chosen` and `rejected` are chat
conversations, named as `data.train=dir:train_prefs`."""

from __future__ import annotations

import json

import pytest

from rlhf import cli

from .helpers import pairs, sft_overrides


def conversation(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def ultrafeedback(tmp_path_factory):
    import datasets

    def rows(n: int, seed: int) -> list[dict]:
        out = []
        for i, p in enumerate(pairs(n, seed=seed)):
            out.append(
                {
                    "prompt": p["prompt"],
                    "prompt_id": str(i),
                    "chosen": conversation(p["prompt"], p["chosen"]),
                    "rejected": conversation(p["prompt"], p["rejected"]),
                    "messages": conversation(p["prompt"], p["chosen"]),
                    "score_chosen": 8.0,
                    "score_rejected": 3.0,
                }
            )
        return out

    root = tmp_path_factory.mktemp("uf") / "ultrafeedback"
    splits = {"train_prefs": rows(16, 0), "test_prefs": rows(8, 1)}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(
        str(root)
    )
    return root


@pytest.mark.parametrize("verb", ["dpo", "reward"])
def test_verbs_train_on_ultrafeedback_splits(verb, ultrafeedback, nano_model, tmp_path, capsys):
    out = tmp_path / verb
    args = sft_overrides(
        nano_model,
        f"{ultrafeedback}:train_prefs",
        out,
        f"data.eval={ultrafeedback}:test_prefs",
        "train.max_steps=1",
    )
    assert cli.main([verb, *args]) == 0, capsys.readouterr().err
    assert json.loads((out / "data.json").read_text())["train"]["records"] == 16
    evals = [
        m for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "eval_accuracy" in m
    ]
    assert evals, "the test_prefs split is read as data.eval"
    assert (out / "final" / "config.json").exists()


def test_a_datasetdict_without_train_names_its_splits(ultrafeedback, nano_model, tmp_path, capsys):
    assert cli.main(["dpo", *sft_overrides(nano_model, ultrafeedback, tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "['train_prefs', 'test_prefs']" in err and f"{ultrafeedback}:train_prefs" in err
