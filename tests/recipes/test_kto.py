"""`rlhf dpo dpo.loss=kto` on unpaired feedback: a few steps raise the likelihood of the liked
completions and lower that of the disliked ones, against the reference."""

from __future__ import annotations

import json

import pytest
import torch

from rlhf import cli

from .helpers import pairs, read_metrics, sft_overrides, write_jsonl


def feedback(n: int, seed: int) -> list[dict]:
    """Each pair split into a thumbs up (the correct answer) and a thumbs down (the bad one)."""
    out = []
    for p in pairs(n, seed=seed):
        out.append({"prompt": p["prompt"], "completion": p["chosen"], "label": True})
        out.append({"prompt": p["prompt"], "completion": p["rejected"], "label": False})
    return out


@torch.no_grad()
def mean_logp(model_dir, records: list[dict]) -> tuple[float, float]:
    """Mean log p(completion + EOS | prompt) of the liked and of the disliked completions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir)
    sums = {True: [], False: []}
    for r in records:
        p = tok(r["prompt"])["input_ids"]
        c = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1]
        sums[r["label"]].append(
            float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(c)[:, None]).sum())
        )
    return sum(sums[True]) / len(sums[True]), sum(sums[False]) / len(sums[False])


def test_kto_moves_the_policy_towards_liked_and_away_from_disliked(nano_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "feedback.jsonl", feedback(24, seed=0))
    held_out = feedback(8, seed=1)
    out = tmp_path / "kto"
    args = sft_overrides(nano_model, train, out, "dpo.loss=kto", "dpo.beta=0.5", "train.max_steps=8")
    assert cli.main(["dpo", *args]) == 0, capsys.readouterr().err
    steps = [m for m in read_metrics(out) if "loss" in m]
    # step 1: the policy is the reference, every r and z0 are 0: each loss is 1 - sigmoid(0)
    assert steps[0]["loss"] == pytest.approx(0.5, abs=1e-5)
    late = [m["loss"] for m in steps[-4:]]
    assert sum(late) / len(late) < 0.45, [m["loss"] for m in steps]
    counts = json.loads((out / "data.json").read_text())["train"]
    assert (counts["records"], counts["desirable"], counts["undesirable"]) == (48, 24, 24)
    liked0, disliked0 = mean_logp(nano_model, held_out)
    liked1, disliked1 = mean_logp(out / "final", held_out)
    assert liked1 > liked0 and disliked1 < disliked0, (liked0, liked1, disliked0, disliked1)


def test_kto_config_and_data_errors(nano_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "feedback.jsonl", feedback(4, seed=0))
    bad = [
        (["dpo.loss=kto", "dpo.nll_coef=0.1"], "dpo.nll_coef"),
        (["dpo.loss=kto", "dpo.undesirable_weight=0"], "must be > 0"),
        (["dpo.desirable_weight=2"], "only read by dpo.loss=kto"),
    ]
    for extra, message in bad:
        assert cli.main(["dpo", *sft_overrides(nano_model, train, tmp_path / "run", *extra)]) == 2
        assert message in capsys.readouterr().err
    pair_file = write_jsonl(tmp_path / "pairs.jsonl", pairs(4))
    assert cli.main(["dpo", *sft_overrides(nano_model, pair_file, tmp_path / "run", "dpo.loss=kto")]) == 2
    assert "pairs.jsonl:1: missing field 'completion'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
