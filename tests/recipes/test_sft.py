"""End-to-end SFT: a nano GPT-2 learns the answer format of arithmetic demonstrations."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import yaml

from rlhf.config import load_config
from rlhf.recipes import sft

from .helpers import (
    assert_same_weights,
    demonstrations,
    load_weights,
    read_metrics,
    sft_overrides,
    write_jsonl,
)


def run_sft(nano_model, train, out, *extra):
    cfg = load_config(sft.Config, None, sft_overrides(nano_model, train, out, *extra))
    return cfg, sft.train(cfg)


def losses(run_dir) -> list[float]:
    return [m["loss"] for m in read_metrics(run_dir) if "loss" in m]


def test_sft_trains_and_writes_the_run_directory(nano_model, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # 64 learnable demonstrations, 3 whose prompt must be cut to fit, 2 whose answer cannot fit
    long_prompt = [
        {"prompt": "too long " * 30 + "What is 1 + 2?", "completion": " 3."},
        {"prompt": "too long " * 40 + "What is 2 + 2?", "completion": " 4."},
        {"prompt": "too long " * 50 + "What is 3 + 2?", "completion": " 5."},
    ]
    long_answer = [{"prompt": "What is 1 + 1?", "completion": " too long" * 80 + " 2."}] * 2
    train = write_jsonl(tmp_path / "train.jsonl", demonstrations(64) + long_prompt + long_answer)
    out = tmp_path / "run"
    cfg, final = run_sft(nano_model, train, out, f"data.eval={data_dir / 'demos_eval.jsonl'}")

    # the weights moved
    before, after = load_weights(nano_model), load_weights(final)
    assert before.keys() == after.keys()
    for name, w in before.items():
        if w.ndim == 2:
            assert not torch.equal(w, after[name]), f"{name} did not change"

    # the loss fell on the learnable signal
    loss = losses(out)
    assert len(loss) == cfg.train.max_steps
    assert all(math.isfinite(x) for x in loss)
    assert sum(loss[-3:]) / 3 < 0.8 * loss[0], loss
    assert "eval_loss" in read_metrics(out)[-1]

    # final/ is a plain Hugging Face model + tokenizer
    assert final == out / "final"
    assert (final / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    for name, p in model.state_dict().items():
        if name in after:
            assert torch.equal(p, after[name]), name
    with torch.no_grad():
        ids = tok("What is 1 + 2?", return_tensors="pt")["input_ids"]
        assert model(ids).logits.shape == (1, ids.shape[1], model.config.vocab_size)

    # the run directory contract
    assert yaml.safe_load((out / "config.yaml").read_text()) == dataclasses.asdict(cfg)
    counts = json.loads((out / "data.json").read_text())
    assert {k: counts["train"][k] for k in ("records", "truncated", "dropped")} == {
        "records": 69,
        "truncated": 3,
        "dropped": 2,
    }
    assert counts["rows"] == 67
    assert not list(out.glob(".tmp-*"))


def test_sft_with_packing_trains(nano_model, data_dir, tmp_path):
    out = tmp_path / "run"
    _, final = run_sft(nano_model, data_dir / "demos.jsonl", out, "sft.packing=true")
    rows = json.loads((out / "data.json").read_text())["rows"]
    assert rows < 64 / 3, "packing should put several demonstrations in a 64-token row"
    loss = losses(out)
    assert all(math.isfinite(x) for x in loss)
    assert sum(loss[-3:]) / 3 < 0.8 * loss[0], loss
    assert (final / "model.safetensors").is_file()


def test_sft_bf16_autocast(nano_model, data_dir, tmp_path):
    # a float32 run first: a second run in the same process must be able to change mixed precision
    run_sft(nano_model, data_dir / "demos.jsonl", tmp_path / "fp32", "train.max_steps=2")
    out = tmp_path / "bf16"
    cfg, final = run_sft(nano_model, data_dir / "demos.jsonl", out, "train.mixed_precision=bf16")
    assert cfg.train.mixed_precision == "bf16"
    loss = losses(out)
    assert all(math.isfinite(x) for x in loss)
    assert loss[-1] < loss[0]
    # the same first batch as the float32 run, computed in bf16: close, but not bit-identical
    # (identical would mean autocast was silently not applied)
    fp32_first = losses(tmp_path / "fp32")[0]
    assert loss[0] == pytest.approx(fp32_first, rel=0.05)
    assert loss[0] != fp32_first
    after = load_weights(final)
    assert all(w.dtype == torch.float32 for w in after.values()), "autocast must leave weights in float32"
    before = load_weights(nano_model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_gradient_accumulation_matches_one_large_batch(nano_model, data_dir, tmp_path):
    steps = ("train.max_steps=6", "train.lr=1e-3")
    _, big = run_sft(
        nano_model,
        data_dir / "demos.jsonl",
        tmp_path / "big",
        "train.batch_size=4",
        "train.grad_accum=1",
        *steps,
    )
    _, acc = run_sft(
        nano_model,
        data_dir / "demos.jsonl",
        tmp_path / "acc",
        "train.batch_size=2",
        "train.grad_accum=2",
        *steps,
    )
    start, w_big, w_acc = load_weights(nano_model), load_weights(big), load_weights(acc)
    assert any(not torch.equal(start[k], w_big[k]) for k in start)
    assert_same_weights(w_big, w_acc, atol=1e-5)
    # same loss and gradient norm at every step: a gradient scaled by a constant would pass the
    # weight check (Adam is nearly scale invariant) but not this one
    for m_big, m_acc in zip(read_metrics(tmp_path / "big"), read_metrics(tmp_path / "acc"), strict=True):
        assert m_acc["loss"] == pytest.approx(m_big["loss"], rel=1e-5)
        assert m_acc["grad_norm"] == pytest.approx(m_big["grad_norm"], rel=1e-4)


def kl_logged(run_dir) -> list[float]:
    return [m["kl_to_start"] for m in read_metrics(run_dir) if "kl_to_start" in m]


@pytest.mark.parametrize("lora", [False, True], ids=["frozen copy", "adapters off"])
def test_sft_kl_coef_holds_the_policy_near_its_start(nano_model, data_dir, tmp_path, lora):
    """sft.kl_coef adds KL(start || policy) to the NLL: the start is a frozen copy of model.path,
    or with LoRA the policy with its adapters off. It is 0 at the first step (the policy is its
    start), and a heavy weight keeps the policy nearer its start than a negligible one."""
    extra = ("model.lora_r=16", "model.lora_alpha=64", "train.lr=5e-3") if lora else ()
    runs = {}
    for coef in (1e-6, 100.0):
        out = tmp_path / f"kl{coef}"
        run_sft(nano_model, data_dir / "demos.jsonl", out, f"sft.kl_coef={coef}", *extra)
        runs[coef] = (kl_logged(out), losses(out))
    (weak_kl, weak_loss), (kl, loss) = runs[1e-6], runs[100.0]
    assert len(kl) == len(loss) == 20
    assert weak_kl[0] < 1e-6 and kl[0] < 1e-6
    assert loss[0] == pytest.approx(weak_loss[0], rel=1e-5)  # "loss" is the NLL, not the sum
    late, weak_late = sum(kl[10:]) / 10, sum(weak_kl[10:]) / 10
    assert weak_late > 0.003
    assert late < 0.3 * weak_late, (kl, weak_kl)


def test_a_demonstrations_kl_weight_scales_its_own_pull(nano_model, tmp_path, capsys):
    """kl_weight 0 on every demonstration leaves SFT exactly plain NLL however large sft.kl_coef,
    packed or not; with half the records at 0, the pull logged is the other half's only. Without
    sft.kl_coef a kl_weight does nothing, and the run says so."""
    demos = demonstrations(32)
    plain = tmp_path / "plain"
    run_sft(nano_model, write_jsonl(tmp_path / "d.jsonl", demos), plain, "sft.packing=true")
    free = write_jsonl(tmp_path / "free.jsonl", [{**d, "kl_weight": 0} for d in demos])
    run_sft(nano_model, free, tmp_path / "no-pull", "train.max_steps=1")
    assert "32 demonstrations of data.train carry a kl_weight other than 1, which does nothing" in (
        capsys.readouterr().out
    )
    for packing in ("false", "true"):
        out = tmp_path / f"free-{packing}"
        _, final = run_sft(nano_model, free, out, "sft.kl_coef=100", f"sft.packing={packing}")
        assert kl_logged(out) == [0.0] * 20
        if packing == "true":
            assert_same_weights(load_weights(final), load_weights(plain / "final"), atol=0)
            assert losses(out) == losses(plain)
    half = write_jsonl(tmp_path / "half.jsonl", [{**d, "kl_weight": i % 2} for i, d in enumerate(demos)])
    run_sft(nano_model, half, tmp_path / "half", "sft.kl_coef=1")
    assert all(k > 0 for k in kl_logged(tmp_path / "half")[1:])


@pytest.mark.parametrize("coef", ["-0.1", "nan", "inf"])
def test_sft_kl_coef_must_be_finite_and_not_negative(nano_model, data_dir, tmp_path, coef):
    from rlhf.config import ConfigError

    with pytest.raises(ConfigError, match="sft.kl_coef must be a finite number >= 0"):
        run_sft(nano_model, data_dir / "demos.jsonl", tmp_path / "run", f"sft.kl_coef={coef}")
    assert not (tmp_path / "run").exists()
