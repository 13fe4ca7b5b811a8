"""End-to-end DPO: a nano GPT-2 learns to prefer the short correct answer from pairs and from
rankings; every loss and every reference source is wired; exact resume; per-sequence log-probs
do not depend on padding; bad configs exit 2 before a run directory exists."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from rlhf import cli
from rlhf.config import load_config
from rlhf.recipes import dpo
from rlhf.recipes.dpo_reference import REF_CACHE

from .helpers import (
    assert_same_weights,
    corpus,
    load_weights,
    pairs,
    read_metrics,
    sft_overrides,
    write_jsonl,
)
from .test_cli import check_help_lists_every_key
from .test_resume import Interrupt, check_checkpoints

LOG2 = math.log(2)
STEP_KEYS = {"loss", "accuracy", "margin", "reward_chosen", "reward_rejected", "logp_chosen", "logp_rejected"}


def dpo_overrides(model, train, out, *extra: str) -> list[str]:
    return sft_overrides(model, train, out, "dpo.beta=0.5", *extra)


def run_dpo(model, train, out, *extra: str):
    cfg = load_config(dpo.Config, None, dpo_overrides(model, train, out, *extra))
    return dpo.train(cfg)


@torch.no_grad()
def logp(model, tok, prompt: str, response: str) -> float:
    """log p(response + EOS | prompt), computed plainly with a full log_softmax."""
    p = tok(prompt)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    logits = model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1 : -1]
    return float(torch.log_softmax(logits.double(), -1).gather(-1, torch.tensor(r)[:, None]).sum())


@pytest.mark.parametrize("kind", ["pairs", "rankings"])
def test_dpo_learns_preferences(kind, nano_model, data_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    evals = data_dir / "pairs_eval.jsonl"
    args = dpo_overrides(
        nano_model, data_dir / f"{kind}.jsonl", out, f"data.eval={evals}", "train.eval_every=10"
    )
    assert cli.main(["dpo", *args]) == 0
    capsys.readouterr()

    metrics = read_metrics(out)
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == list(range(1, 21))
    assert all(STEP_KEYS <= m.keys() and math.isfinite(m["loss"]) for m in steps)
    # at step 1 the policy is the reference: every implicit reward is 0 and the loss log 2
    assert steps[0]["loss"] == pytest.approx(LOG2, abs=1e-5)
    assert steps[0]["margin"] == pytest.approx(0.0, abs=1e-4)
    assert "eval_accuracy" in steps[9], "train.eval_every=10 evaluates at step 10"
    final_eval = metrics[-1]
    assert final_eval["eval_loss"] < 0.5 * LOG2 and final_eval["eval_accuracy"] > 0.8, final_eval
    assert final_eval["eval_reward_chosen"] > final_eval["eval_reward_rejected"]

    counts = json.loads((out / "data.json").read_text())["train"]
    assert counts["records"] == 48 and counts["pairs"] == 48 * (3 if kind == "rankings" else 1)
    assert counts["tied_pairs_skipped"] == 0

    # final/ is a plain causal LM that, reloaded, prefers the chosen answers more than the start did
    final = out / "final"
    policy = AutoModelForCausalLM.from_pretrained(final).eval()
    ref = AutoModelForCausalLM.from_pretrained(nano_model).eval()
    tok = AutoTokenizer.from_pretrained(final)
    wins = 0
    records = [json.loads(line) for line in evals.read_text().splitlines()]
    for rec in records:
        h = [
            logp(policy, tok, rec["prompt"], rec[k]) - logp(ref, tok, rec["prompt"], rec[k])
            for k in ("chosen", "rejected")
        ]
        wins += h[0] > h[1]
    assert wins / len(records) > 0.8


@pytest.mark.parametrize(
    "loss, extra, first_loss",
    [
        ("sigmoid", [], LOG2),
        ("cdpo", ["dpo.label_smoothing=0.1"], LOG2),
        ("ipo", [], 1.0),  # (0 - 1/(2 beta))^2 with beta 0.5
        ("hinge", [], 1.0),  # max(0, 1 - 0)
    ],
)
def test_every_loss_is_wired(loss, extra, first_loss, nano_model, data_dir, tmp_path):
    out = tmp_path / "run"
    run_dpo(nano_model, data_dir / "pairs.jsonl", out, f"dpo.loss={loss}", "train.max_steps=3", *extra)
    losses = [m["loss"] for m in read_metrics(out)]
    assert losses[0] == pytest.approx(first_loss, abs=1e-5)
    assert losses[2] < losses[0], losses


@pytest.fixture(scope="module")
def other_model(nano_model, tmp_path_factory):
    """The nano checkpoint with every weight perturbed: a reference that is not the policy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path_factory.mktemp("other")
    model = AutoModelForCausalLM.from_pretrained(nano_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(d)
    AutoTokenizer.from_pretrained(nano_model).save_pretrained(d)
    return d


@pytest.mark.parametrize("variant", ["frozen", "adapters_off", "ref_model", "two_rows"])
def test_variants_agree_with_the_default(variant, nano_model, other_model, data_dir, tmp_path):
    """Each reference source, and separate rows for chosen and rejected, train exactly like the
    default (precomputed reference, one shared-prompt row per pair)."""
    extra = {
        "frozen": ["dpo.reference=frozen"],
        "adapters_off": ["dpo.reference=adapters_off", "model.lora_r=4"],
        "ref_model": ["dpo.reference=frozen", f"dpo.ref_model={other_model}"],
        "two_rows": ["dpo.share_prompt=false"],
    }[variant]
    base = ["train.max_steps=4", *(e for e in extra if e.startswith(("model.", "dpo.ref_model")))]
    train = data_dir / "pairs.jsonl"
    run_dpo(nano_model, train, tmp_path / "pre", *base)
    run_dpo(nano_model, train, tmp_path / "live", *base, *extra)
    pre, live = read_metrics(tmp_path / "pre"), read_metrics(tmp_path / "live")
    for a, b in zip(pre, live, strict=True):
        for key in ("loss", "margin", "reward_chosen", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, a, b)
    if variant == "ref_model":
        # a reference that is not the initial policy: rewards are not 0 at step 1
        assert abs(pre[0]["loss"] - LOG2) > 1e-3 and abs(pre[0]["margin"]) > 1e-3
    else:
        assert pre[0]["loss"] == pytest.approx(LOG2, abs=1e-5)
    assert_same_weights(
        load_weights(tmp_path / "pre" / "final"), load_weights(tmp_path / "live" / "final"), atol=1e-4
    )


def test_interrupted_run_resumes_exactly(nano_model, data_dir, tmp_path, capsys):
    def config(out):
        args = dpo_overrides(
            nano_model,
            data_dir / "rankings.jsonl",
            out,
            "train.max_steps=8",
            "train.save_every=3",
            "train.keep_checkpoints=1",
        )
        return load_config(dpo.Config, None, args)

    a, b = tmp_path / "a", tmp_path / "b"
    final_a = dpo.train(config(a))
    with pytest.raises(KeyboardInterrupt):
        dpo.train(config(b), callbacks=[Interrupt(at=4)])
    check_checkpoints(b, [3])
    cache = b / REF_CACHE
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns

    capsys.readouterr()
    seen = Interrupt()
    final_b = dpo.train(config(b), callbacks=[seen])
    out = capsys.readouterr().out
    assert f"resumed from {b / 'checkpoints' / 'step-3'} at step 3" in out
    assert f"reference log-probs loaded from {cache}" in out and cache.stat().st_mtime_ns == stamp
    assert seen.steps == [4, 5, 6, 7, 8]

    assert_same_weights(load_weights(final_a), load_weights(final_b), atol=1e-6)
    metrics_a, metrics_b = read_metrics(a), read_metrics(b)
    assert [m["step"] for m in metrics_b] == list(range(1, 9))
    for ma, mb in zip(metrics_a, metrics_b, strict=True):
        for key in ("loss", "accuracy", "margin", "lr"):
            assert mb[key] == pytest.approx(ma[key], rel=1e-6, abs=1e-7), (key, ma, mb)


def test_reference_cache_is_reused_only_for_the_same_reference_and_data(
    nano_model, other_model, data_dir, tmp_path, capsys
):
    import shutil

    model = tmp_path / "policy"
    shutil.copytree(nano_model, model)
    out = tmp_path / "run"
    cache = out / REF_CACHE

    def run(train="pairs.jsonl") -> str:
        capsys.readouterr()
        run_dpo(model, data_dir / train, out, "train.max_steps=1", "train.resume=false")
        return capsys.readouterr().out

    assert "reference log-probs computed" in run()
    assert f"reference log-probs loaded from {cache}" in run()
    assert "reference log-probs computed" in run("hh.jsonl"), "other data: the cache must not be used"
    shutil.copy(other_model / "model.safetensors", model / "model.safetensors")  # retrained in place
    assert "reference log-probs computed" in run("hh.jsonl"), "another reference: the cache must not be used"


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)
def test_dpo_on_2_processes_matches_1_process(nano_model, data_dir, tmp_path, capsys):
    """Data parallel: the reference pass is split across the processes and gathered, and the
    weighted loss is normalised over the global batch, so 2 x batch 2 == 1 x batch 4."""
    from .test_distributed import check_same_run, common, launch_2_processes

    train, evals = data_dir / "rankings.jsonl", f"data.eval={data_dir / 'pairs_eval.jsonl'}"
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert (
        cli.main(["dpo", *dpo_overrides(nano_model, train, single, *common(evals), "train.batch_size=4")])
        == 0
    )
    capsys.readouterr()
    launch_2_processes(
        ["dpo", *dpo_overrides(nano_model, train, multi, *common(evals), "train.batch_size=2")], tmp_path
    )
    check_same_run(single, multi, n_records=144)
    torch.testing.assert_close(
        load_file(str(multi / REF_CACHE))["train"],
        load_file(str(single / REF_CACHE))["train"],
        rtol=0,
        atol=1e-5,
    )


def test_grad_accumulation_gives_the_global_batch_gradient(nano_model, tmp_path):
    # unequal weights: a per-micro-batch mean would weigh the two halves of a step differently
    recs = pairs(32, seed=5)
    for i, rec in enumerate(recs):
        rec["weight"] = [0.5, 1.0, 3.0, 0.0][i % 4]
    train = write_jsonl(tmp_path / "weighted.jsonl", recs)
    run_dpo(nano_model, train, tmp_path / "one", "train.max_steps=3", "train.batch_size=4")
    run_dpo(
        nano_model, train, tmp_path / "two", "train.max_steps=3", "train.batch_size=2", "train.grad_accum=2"
    )
    for a, b in zip(read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two"), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert_same_weights(
        load_weights(tmp_path / "one" / "final"), load_weights(tmp_path / "two" / "final"), atol=1e-5
    )


def test_ties_are_skipped_and_counted(nano_model, tmp_path):
    q = "What is 1 + 2?"
    recs = [
        {
            "prompt": q,
            "responses": [" 3.", " 3 3 3.", " I do not know."],
            "ranks": [1, 2, 2],
        },  # 2 pairs, 1 tie
        {"prompt": q, "responses": [" 3.", " 4."], "ranks": [1, 1]},  # all tied: no pair
        {"prompt": q, "chosen": " 3.", "rejected": " 4."},
    ]
    out = tmp_path / "run"
    run_dpo(nano_model, write_jsonl(tmp_path / "ties.jsonl", recs), out, "train.max_steps=1")
    counts = json.loads((out / "data.json").read_text())["train"]
    assert counts["pairs"] == 3
    assert counts["tied_pairs_skipped"] == 2
    assert counts["all_tied"] == 1


# ---------------------------------------------------------------- per-sequence log-probs


def test_collator_shared_prompt_rows_literal():
    pairs_ = [
        {"prompt_ids": [5, 6], "chosen_ids": [7, 8], "rejected_ids": [9], "weight": 1.0},
        {"prompt_ids": [5], "chosen_ids": [7], "rejected_ids": [8, 9], "weight": 2.0},
    ]
    batch = dpo.PairCollator(pad_id=0)(pairs_)
    t = torch.tensor
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 7, 8, 9, 0]]
    # positions restart after the prompt for the rejected response
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2], [0, 1, 1, 2, 0]]
    # side 0 = chosen, side 1 = rejected; the prompt's last position predicts both first tokens
    assert batch["targets"][..., 0].tolist() == [[-100, 7, 8, -100, -100], [7, -100, -100, -100, -100]]
    assert batch["targets"][..., 1].tolist() == [[-100, 9, -100, -100, -100], [8, -100, 9, -100, -100]]
    assert batch["logits_to_keep"] == 5  # row 2's prompt ends at column 0
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 5, 5) and mask.dtype == torch.bool
    # causal, and the rejected tokens (last of row 1; columns 2-3 of row 2) never see chosen ones;
    # the padding position (row 2, last) sees itself, so that no softmax row is empty
    assert mask[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],
    ]
    assert mask[1, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [1, 0, 1, 1, 0],
        [1, 0, 0, 0, 1],
    ]
    assert batch["weight"].tolist() == [1.0, 2.0]
    # eager attention adds the mask to its scores: 0 where allowed, the dtype's minimum elsewhere
    additive = dpo.PairCollator(pad_id=0, float_mask=torch.float32)(pairs_)["attention_mask"]
    torch.testing.assert_close(additive, torch.where(mask, t(0.0), t(torch.finfo(torch.float32).min)))


def test_collator_two_rows_literal():
    pairs_ = [
        {"prompt_ids": [5, 6], "chosen_ids": [7], "rejected_ids": [8, 9], "weight": 1.0, "ref": (-1.0, -2.0)}
    ]
    batch = dpo.PairCollator(pad_id=0, share_prompt=False)(pairs_)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [5, 6, 8, 9]]  # chosen row, then rejected row
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["targets"][..., 0].tolist() == [[-100, 7, -100, -100], [-100, 8, 9, -100]]
    assert batch["logits_to_keep"] == 3
    assert batch["ref_logps"].tolist() == [-1.0, -2.0]


@pytest.fixture(scope="module")
def nano_llama(tmp_path_factory):
    """A nano Llama (RoPE, RMSNorm): position ids enter the attention itself, not an embedding."""
    from rlhf.models.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("llama"), corpus(), "llama", vocab_size=300)


@pytest.mark.parametrize("arch, attn", [("gpt2", "sdpa"), ("gpt2", "eager"), ("llama", "sdpa")])
def test_padding_and_row_layout_do_not_change_sequence_logps(arch, attn, nano_model, nano_llama):
    """A pair's log-probs, alone or padded (either side, by a little or a lot) next to longer
    pairs, as two rows or one shared-prompt row, with the LM head on every position or only the
    kept ones, all equal a plain float64 computation on the unpadded sequence."""
    from rlhf.models.loading import load_policy, load_tokenizer
    from rlhf.sections import ModelConfig

    path = str(nano_model if arch == "gpt2" else nano_llama)
    tok = load_tokenizer(path)
    model = load_policy(ModelConfig(path=path, attn_implementation=attn), tok).eval()
    made = dpo.make_collator(dpo.Config().dpo.share_prompt, model, tok.pad_token_id, longest=100)
    assert made.float_mask == (torch.float32 if attn == "eager" else None) and made.keep

    def enc(prompt: str, chosen: str, rejected: str) -> dict:
        def ids(text):
            return tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

        p = tok(prompt)["input_ids"]
        return {"prompt_ids": p, "chosen_ids": ids(chosen), "rejected_ids": ids(rejected), "weight": 1.0}

    q = ("What is 1 + 2?", " 3.", " 3 3 3 3 3 3.")
    short = enc(*q)
    medium = enc("What is 4 + 4?", " 8 8.", " 8.")
    long = enc(
        "What is 7 + 8? " * 4, " 15." * 10, " I do not know, maybe ask again later, it is hard to say."
    )
    expected = torch.tensor([logp(model, tok, q[0], q[1]), logp(model, tok, q[0], q[2])], dtype=torch.float64)

    for share in (True, False):
        for left in (False, True):
            for keep in (True, False):
                collate = dpo.PairCollator(tok.pad_token_id, share, made.float_mask, keep, left)
                for batch_pairs in ([short], [short, medium], [short, long], [short, long, medium]):
                    with torch.no_grad():
                        sums, counts = dpo.forward_logps(model, collate(batch_pairs))
                    b = len(batch_pairs)
                    where = f"share_prompt={share}, left={left}, keep={keep}, batch of {b}"
                    torch.testing.assert_close(
                        sums[[0, b]].double(), expected, rtol=2e-6, atol=2e-5, msg=where
                    )
                    assert counts[[0, b]].tolist() == [len(short["chosen_ids"]), len(short["rejected_ids"])]


# ---------------------------------------------------------------- command line


def test_dpo_help_lists_every_config_key_with_its_doc(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dpo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    check_help_lists_every_key(out, dpo.Config)
    assert "dpo.reference" in out and "adapters_off" in out


@pytest.mark.parametrize(
    "loss, extra",
    [
        ("simpo", ["dpo.beta=2.0", "dpo.gamma=0.5"]),
        ("sigmoid", ["dpo.nll_coef=0.7"]),
        ("simpo", ["dpo.beta=2.0", "dpo.nll_coef=0.7"]),
    ],
)
def test_simpo_and_the_nll_term_at_step_1_equal_a_direct_computation(
    loss, extra, nano_model, data_dir, tmp_path
):
    """One step over all 48 pairs: the logged loss and rewards equal the formulas applied to
    log-probs computed plainly from the initial model; SimPO runs and caches no reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    run_dpo(
        nano_model,
        data_dir / "pairs.jsonl",
        out,
        f"dpo.loss={loss}",
        "train.batch_size=48",
        "train.max_steps=1",
        *extra,
    )
    cfg = dict(a.split("=") for a in extra)
    beta, gamma, alpha = (
        float(cfg.get("dpo.beta", 0.5)),
        float(cfg.get("dpo.gamma", 0)),
        float(cfg.get("dpo.nll_coef", 0)),
    )
    model = AutoModelForCausalLM.from_pretrained(nano_model).eval()
    tok = AutoTokenizer.from_pretrained(nano_model)
    losses, rc, rr = [], [], []
    for rec in map(json.loads, (data_dir / "pairs.jsonl").read_text().splitlines()):
        lc, lr = (
            logp(model, tok, rec["prompt"], rec["chosen"]),
            logp(model, tok, rec["prompt"], rec["rejected"]),
        )
        nc, nr = (len(tok(rec[k], add_special_tokens=False)["input_ids"]) + 1 for k in ("chosen", "rejected"))
        if loss == "simpo":
            c, r = beta * lc / nc, beta * lr / nr
            losses.append(math.log1p(math.exp(-(c - r - gamma))))
        else:  # the policy is the reference at step 1
            c = r = 0.0
            losses.append(LOG2)
        losses[-1] += alpha * -lc / nc
        rc.append(c)
        rr.append(r)
    m = read_metrics(out)[0]
    assert m["loss"] == pytest.approx(sum(losses) / 48, abs=1e-4)
    assert m["reward_chosen"] == pytest.approx(sum(rc) / 48, abs=1e-4)
    assert m["reward_rejected"] == pytest.approx(sum(rr) / 48, abs=1e-4)
    assert (out / REF_CACHE).exists() == (loss != "simpo")


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["dpo.loss=orpo"], ["dpo.loss: unknown loss 'orpo'", "sigmoid, cdpo, ipo, hinge, simpo, kto"]),
        (["dpo.gamma=0.5"], ["dpo.gamma is only read by dpo.loss=simpo"]),
        (["dpo.nll_coef=-1"], ["dpo.nll_coef must be >= 0"]),
        (
            ["dpo.reference=none"],
            ["dpo.reference=none: dpo.loss=sigmoid compares the policy with a reference"],
        ),
        (
            ["dpo.loss=simpo", "dpo.reference=frozen"],
            ["dpo.loss=simpo reads no reference, so dpo.reference=frozen"],
        ),
        (["dpo.reference=adapters_off"], ["dpo.reference=adapters_off needs LoRA (model.lora_r > 0)"]),
        (["dpo.loss=cdpo"], ["dpo.loss=cdpo needs dpo.label_smoothing in (0, 0.5)"]),
        (["dpo.label_smoothing=0.1"], ["dpo.label_smoothing is only read by dpo.loss=cdpo"]),
        (["dpo.beta=0"], ["dpo.beta must be > 0"]),
        (["dpo.reference=fixed"], ["dpo.reference", "'fixed'"]),
        (["dpo.ref_model=/no/such/model"], ["dpo.ref_model", "does not exist"]),
        (
            ["dpo.reference=adapters_off", "model.lora_r=4", "dpo.ref_model=/tmp"],
            ["dpo.ref_model cannot be set with dpo.reference=adapters_off"],
        ),
    ],
    ids=[
        "unknown-loss",
        "gamma-not-read",
        "negative-nll",
        "no-reference-for-dpo",
        "simpo-with-reference",
        "adapters-off-without-lora",
        "cdpo-without-smoothing",
        "smoothing-not-read",
        "beta",
        "unknown-reference",
        "missing-ref-model",
        "adapters-off-with-ref-model",
    ],  # fmt: skip
)
def test_bad_config_exits_2_before_the_run_dir_exists(
    extra, expected, nano_model, data_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    assert cli.main(["dpo", *dpo_overrides(nano_model, data_dir / "pairs.jsonl", out, *extra)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlhf dpo: error: ")
    for piece in expected:
        assert piece in err, err
    assert "Traceback" not in err
    assert not out.exists(), "the run directory must not be created for an invalid config"
