"""`rlhf ppo` end to end on the nano model: PPO, GRPO and RLOO learn a reward, resume exactly, and
reject bad configs before any work."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhf.cli import main
from rlhf.config import load_config
from rlhf.eval.metrics import distinct_n, repeated_ngram_share
from rlhf.recipes import ppo, ppo_models, ppo_update
from rlhf.recipes.algorithms import grpo

from .helpers import assert_same_weights, load_weights, read_metrics

DIGITS = "tests.recipes.reward_fns:digits"
ONLINE = ["algo.name=online_dpo", "rollout.samples_per_prompt=4"]


def overrides(model, prompts, out, *extra):
    return [
        f"model.path={model}",
        f"data.train={prompts}",
        f"train.output_dir={out}",
        "train.batch_size=8",
        "train.max_steps=4",
        "train.lr=3e-3",
        "rollout.max_new_tokens=8",
        "rollout.samples_every=2",
        *extra,
    ]


def run(*args, **kw):
    return ppo.train(load_config(ppo.Config, None, list(args)), **kw)


@pytest.mark.parametrize(
    "algo,extra",
    [
        ("ppo", ["critic.init=policy", "critic.lr=1e-2", "algo.epochs=2", "algo.minibatches=2"]),
        (
            "ppo",
            [
                "critic.init=shared",
                "critic.lr=1e-2",
                "critic.vf_coef=0.5",
                "algo.epochs=2",
                "algo.micro_batch=4",
            ],
        ),
        ("grpo", ["rollout.samples_per_prompt=4", "train.batch_size=4"]),
        ("rloo", ["rollout.samples_per_prompt=4", "train.batch_size=4", "rollout.engine=hf"]),
        (
            "online_dpo",
            [
                "rollout.samples_per_prompt=4",
                "train.batch_size=4",
                "algo.minibatches=2",
                "algo.micro_batch=4",
            ],
        ),
    ],
)
def test_each_algorithm_raises_a_reward_function(algo, extra, nano_model, prompts, tmp_path):
    out = tmp_path / algo
    run(
        *overrides(nano_model, prompts, out, f"algo.name={algo}", f"rewards.function={DIGITS}", *extra),
        "train.max_steps=24",
        "train.lr=3e-2",
        "algo.kl_coef=0.0" if algo != "online_dpo" else "algo.kl_coef=0.5",
    )
    m = read_metrics(out)
    assert [r["step"] for r in m] == list(range(1, 25))
    first = sum(r["score_raw"] for r in m[:4]) / 4
    last = sum(r["score_raw"] for r in m[-4:]) / 4
    assert last > first + 0.15, (first, last)
    for key in (
        "kl",
        "entropy",
        "approx_kl",
        "response_length",
        "no_eos_share",
        "time_generate",
        "distinct_2",
    ):
        assert key in m[-1], key
    assert ("clipfrac" in m[-1]) == (algo != "online_dpo")  # online DPO has no clipped ratio
    assert (algo == "ppo") == ("explained_variance" in m[-1])
    samples = [
        json.loads(x)["response"] for x in (out / "samples" / "step-24.jsonl").read_text().splitlines()
    ]
    assert m[-1]["distinct_2"] == pytest.approx(
        distinct_n(samples, 2), abs=1e-6
    )  # the logged step's own samples
    assert m[-1]["repeated_bigrams"] == pytest.approx(
        sum(map(repeated_ngram_share, samples)) / len(samples), abs=1e-6
    )
    if algo == "ppo":  # the critic learns too
        assert sum(r["value_loss"] for r in m[-4:]) < sum(r["value_loss"] for r in m[:4])


def test_ppo_with_reward_model_critic_ptx_and_samples(nano_model, prompts, reward_model, data_dir, tmp_path):
    out = tmp_path / "ppo"
    final = run(
        *overrides(nano_model, prompts, out, f"rewards.model={reward_model}"),
        f"ptx.data={data_dir / 'demos.jsonl'}",
        "ptx.coef=0.5",
        "ptx.batch_size=4",
        "rewards.missing_eos_penalty=1.0",
    )
    m = read_metrics(out)
    assert len(m) == 4
    assert all(r["ptx_loss"] > 0 and "value_loss" in r for r in m)
    assert m[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # step 1 samples from the reference itself
    # the missing-EOS penalty is applied on top of the normalised score
    assert all(r["score"] <= r["score_raw"] * 10 + 10 for r in m)
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == ["step-2.jsonl", "step-4.jsonl"]
    row = json.loads((out / "samples" / "step-2.jsonl").read_text().splitlines()[0])
    assert set(row) == {"prompt", "response", "score"}
    before, after = load_weights(nano_model), load_weights(final)
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("critic", ["policy", "shared"])
def test_lora_reference_is_the_policy_without_adapters(critic, nano_model, prompts, tmp_path):
    out = tmp_path / "lora"
    run(
        *overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", f"critic.init={critic}"),
        "model.lora_r=4",
        "train.max_steps=2",
    )
    m = read_metrics(out)
    # at step 1 the LoRA B matrices are zero: policy == reference, so the KL is exactly 0
    assert m[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert (out / "final" / "model.safetensors").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()  # the LoRA run's PEFT adapter too


class Interrupt:
    def __init__(self, at):
        self.at = at

    def __call__(self, step):
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("critic", ["reward", "shared"])
def test_interrupted_run_resumes_exactly(critic, nano_model, prompts, reward_model, tmp_path):
    args = lambda out: overrides(  # noqa: E731
        nano_model,
        prompts,
        out,
        f"rewards.model={reward_model}",
        f"critic.init={critic}",
        "critic.lr=1e-2",  # the (shared) value head must be restored too
        "train.max_steps=5",
        "train.save_every=2",
        "algo.kl_target=0.5",  # the adaptive controller's state must survive the restart
        "algo.minibatches=2",
    )
    final_a = run(*args(tmp_path / "a"))
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        run(*args(b), callbacks=[Interrupt(3)])
    final_b = run(*args(b))
    assert_same_weights(load_weights(final_a), load_weights(final_b), atol=1e-6)
    ma, mb = read_metrics(tmp_path / "a"), read_metrics(b)
    assert [r["step"] for r in mb] == [1, 2, 3, 4, 5]
    for ra, rb in zip(ma, mb):
        assert ra["score_raw"] == pytest.approx(rb["score_raw"], abs=1e-6)
        assert ra["kl_coef"] == pytest.approx(rb["kl_coef"], rel=1e-9)
        assert ra["value_loss"] == pytest.approx(rb["value_loss"], abs=1e-6)


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "train.batch_size=6", "algo.minibatches=4"],
            "not divisible by 4",
        ),
        ([], "set exactly one of rewards.model"),
        (["rewards.function=no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
        (["rewards.function=tests.recipes.reward_fns:nope"], "has no attribute 'nope'"),
        (["rewards.function=tests.recipes.reward_fns:NOT_CALLABLE"], "not a function"),
        (["rewards.model=/no/such/rm"], "rewards.model"),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "rewards.heldout_model=/no/such/rm"],
            "rewards.heldout_model",
        ),
        ([f"rewards.function={DIGITS}", "algo.name=grpo"], "samples_per_prompt >= 2"),
        ([f"rewards.function={DIGITS}"], "critic.init=reward needs rewards.model"),
        (
            [f"rewards.function={DIGITS}", "critic.init=shared", "critic.vf_coef=0"],
            "critic.vf_coef must be > 0",
        ),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "rewards.format=chat"],
            "rewards.format=chat is how a reward model reads",
        ),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "algo.scale_rewards=batch"],
            "algo.scale_rewards=batch is for algo.name=grpo",
        ),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "algo.clip_high=-0.1"],
            "algo.clip_high >= 0 (got 0.2 and -0.1)",
        ),
        ([f"rewards.function={DIGITS}", "critic.init=policy", "algo.loss_agg=mean"], "algo.loss_agg"),
        (
            [f"rewards.function={DIGITS}", *ONLINE, "algo.kl_coef=0", "algo.reference=false"],
            "algo.name=online_dpo needs the reference",
        ),
        ([f"rewards.function={DIGITS}", *ONLINE, "algo.clip_high=0.28"], "algo.name=online_dpo has none"),
        (
            [f"rewards.function={DIGITS}", *ONLINE, "algo.micro_batch=6"],
            "algo.micro_batch must be a multiple of rollout.samples_per_prompt",
        ),
        (
            [f"rewards.function={DIGITS}", *ONLINE, "algo.scale_rewards=none"],
            "online_dpo has no advantages to scale",
        ),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "algo.ratio_level=sequence"],
            "algo.ratio_level=sequence is for algo.name=grpo or rloo",
        ),
        (
            [f"rewards.function={DIGITS}", "critic.init=policy", "algo.reference=false"],
            "algo.reference=false needs algo.kl_coef=0 and algo.kl_target=0 (got 0.05 and 0.0)",
        ),
    ],
)
def test_bad_config_exits_2_before_any_work(extra, message, nano_model, prompts, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["ppo", *overrides(nano_model, prompts, out, *extra)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


def test_reward_function_returning_the_wrong_count_is_named(nano_model, prompts, tmp_path, capsys):
    bad = "tests.recipes.reward_fns:wrong_length"
    code = main(
        [
            "ppo",
            *overrides(nano_model, prompts, tmp_path / "r", f"rewards.function={bad}", "critic.init=policy"),
        ]
    )
    assert code == 2
    assert "returned 1 rewards for 8 completions" in capsys.readouterr().err


@pytest.mark.parametrize("mixed", ["no", "bf16"])
def test_first_update_is_on_policy(mixed, nano_model, prompts, tmp_path):
    """One epoch of one minibatch, in micro-batches (so the log-probs are recomputed, not reused):
    the training forward gives exactly the log-probs the rollout was scored with, so no ratio is
    clipped and the update's approx_kl is 0."""
    out = tmp_path / "onpolicy"
    run(
        *overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", "critic.init=policy"),
        f"train.mixed_precision={mixed}",
        "train.max_steps=1",
        "rollout.temperature=0.7",
        "algo.micro_batch=4",
    )
    m = read_metrics(out)[0]
    assert m["clipfrac"] == 0.0
    assert m["approx_kl"] == pytest.approx(0.0, abs=1e-6)


def test_bf16_keeps_frozen_models_in_bf16_and_scores_like_fp32(
    nano_model, prompts, reward_model, tmp_path, monkeypatch
):
    """Under bf16 mixed precision the reference and the reward model hold bf16 weights (no casts in
    every forward); the first step's reference log-probs and scores stay within bf16 rounding of fp32."""
    seen = {}

    def runs(mixed):
        out = tmp_path / mixed
        run(
            *overrides(nano_model, prompts, out, f"rewards.model={reward_model}", "rewards.normalize=false"),
            f"train.mixed_precision={mixed}",
            "train.max_steps=1",
        )
        return read_metrics(out)[0]

    original = ppo_models.response_logits

    def spy(model, exp):
        w = next(model.parameters())
        seen.setdefault(w.requires_grad, set()).add(w.dtype)
        return original(model, exp)

    with monkeypatch.context() as patch:
        patch.setattr(ppo_models, "response_logits", spy)
        bf16 = runs("bf16")
    fp32 = runs("no")
    assert torch.bfloat16 in seen[False]  # the frozen reference
    assert seen[True] == {torch.float32}  # the policy trains in fp32 master weights
    assert fp32["kl"] == pytest.approx(0.0, abs=1e-6)
    assert bf16["kl"] == pytest.approx(0.0, abs=0.05)
    assert bf16["score_raw"] == pytest.approx(fp32["score_raw"], abs=0.05)


@pytest.mark.parametrize(
    "algo,extra,compared",
    [
        ("ppo", [], ["policy_loss", "entropy", "approx_kl", "value_loss", "explained_variance"]),
        ("grpo", [], ["policy_loss", "entropy", "approx_kl"]),
        # minibatches of one whole group each: still packed; the minibatch order differs, so only
        # the rollout's own metrics are comparable
        ("ppo", ["algo.epochs=2", "algo.minibatches=2"], ["explained_variance"]),
        # the reward model reads one group (4 rows) at a time
        ("rloo", ["rollout.batch_size=4"], ["policy_loss", "entropy"]),
    ],
)
def test_shared_prompt_forwards_match_separate_rows(
    algo, extra, compared, nano_model, prompts, reward_model, tmp_path, monkeypatch
):
    """rollout.share_prompt packs each prompt's 4 samples in one row for the reward model, the
    reference, the policy and the critic; the first step's scores, KL and losses are those of
    separate rows."""
    packed = []
    original = ppo_models.response_logits

    def spy(model, exp):
        packed.append(exp.groups is not None)
        return original(model, exp)

    monkeypatch.setattr(ppo_models, "response_logits", spy)

    def first_step(share):
        out = tmp_path / f"share-{share}"
        run(
            *overrides(nano_model, prompts, out, f"rewards.model={reward_model}", f"algo.name={algo}"),
            "rollout.samples_per_prompt=4",
            "train.batch_size=2",
            "train.max_steps=1",
            f"rollout.share_prompt={share}",
            *extra,
        )
        return read_metrics(out)[0]

    on = first_step("true")
    assert packed and all(packed)
    packed.clear()
    off = first_step("false")
    assert packed and not any(packed)
    for key in ["score_raw", "score_raw_std", "kl", *compared]:
        assert on[key] == pytest.approx(off[key], abs=1e-5), key


def test_grpo_without_a_reference_learns_and_runs_no_reference(nano_model, prompts, tmp_path, monkeypatch):
    """algo.reference=false (no KL term): no frozen copy is loaded or run, the reward still rises,
    and no `kl` is logged rather than a made-up 0."""
    loaded, forwards = [], []
    original_load, original_logits = ppo_models.load_policy, ppo_models.response_logits

    def load(*args, **kw):
        loaded.append(args[0].lora_r)
        return original_load(*args, **kw)

    def logits(model, exp):
        forwards.append(next(model.parameters()).requires_grad)
        return original_logits(model, exp)

    monkeypatch.setattr(ppo_models, "load_policy", load)
    monkeypatch.setattr(ppo_models, "response_logits", logits)
    out = tmp_path / "noref"
    run(
        *overrides(nano_model, prompts, out, "algo.name=grpo", f"rewards.function={DIGITS}"),
        "rollout.samples_per_prompt=4",
        "train.batch_size=4",
        "train.max_steps=24",
        "train.lr=3e-2",
        "algo.kl_coef=0",
        "algo.reference=false",
    )
    assert len(loaded) == 1  # the policy only
    assert forwards and all(forwards)  # every forward is the policy's, with grad
    m = read_metrics(out)
    assert all("kl" not in r for r in m)
    first = sum(r["score_raw"] for r in m[:4]) / 4
    last = sum(r["score_raw"] for r in m[-4:]) / 4
    assert last > first + 0.15, (first, last)


def test_shared_critic_is_a_value_head_trained_through_the_policy(nano_model, prompts, tmp_path, monkeypatch):
    """critic.init=shared loads no second model, runs one forward a step for logits and values,
    and its value loss (weighted by critic.vf_coef) trains the policy's transformer as well."""
    scalar_models, forwards = [], []
    original_load, original_logits = ppo_models.load_scalar_model, ppo_models.response_logits

    def load(*args, **kw):
        scalar_models.append(args[0].path)
        return original_load(*args, **kw)

    def logits(model, exp, head=None):
        forwards.append((torch.is_grad_enabled(), head is not None))
        return original_logits(model, exp, head=head) if head is not None else original_logits(model, exp)

    monkeypatch.setattr(ppo_models, "load_scalar_model", load)
    monkeypatch.setattr(ppo_models, "response_logits", logits)

    def final(vf_coef):
        out = tmp_path / f"vf-{vf_coef}"
        args = overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", "critic.init=shared")
        return load_weights(run(*args, "train.max_steps=3", "critic.lr=1e-2", f"critic.vf_coef={vf_coef}"))

    small = final(0.1)
    assert scalar_models == []  # no critic model
    # one step: the reference (no grad), then one forward with grad giving logits and values
    assert forwards == [(False, False), (True, True)] * 3
    large = final(1.0)
    assert any(not torch.equal(small[k], large[k]) for k in small)  # the value loss moved the policy


def test_heldout_reward_model_watches_every_logged_step(nano_model, prompts, reward_model, tmp_path):
    """rewards.heldout_model scores each logged step's samples without training on them; given the
    reward model itself, it must read exactly the training score."""
    out = tmp_path / "watched"
    run(
        *overrides(nano_model, prompts, out, f"rewards.model={reward_model}"),
        f"rewards.heldout_model={reward_model}",
        "train.max_steps=3",
        "train.log_every=2",
    )
    m = read_metrics(out)
    assert [r["step"] for r in m] == [2, 3]
    for r in m:
        assert r["score_heldout_raw"] == pytest.approx(r["score_raw"], abs=1e-5)
        stats = json.loads((reward_model / "config.json").read_text())
        normalised = (r["score_raw"] - stats["reward_mean"]) / stats["reward_std"]
        assert r["score_heldout"] == pytest.approx(normalised, abs=1e-4)


GRPO = [
    "algo.name=grpo",
    f"rewards.function={DIGITS}",
    "rollout.samples_per_prompt=4",
    "train.batch_size=4",
    "train.max_steps=3",
]


def test_loss_aggregations_agree_on_equal_lengths_and_differ_otherwise(
    nano_model, prompts, tmp_path, monkeypatch
):
    """algo.loss_agg: token, sequence and constant weigh tokens alike when every response has
    rollout.max_new_tokens tokens, so the runs end with the same weights; with responses of
    different lengths "sequence" up-weights short ones and the runs part."""
    seen = []
    original = ppo_update.aggregation_weights

    def spy(mask, how, total_tokens, total_sequences, max_tokens):
        w = original(mask, how, total_tokens, total_sequences, max_tokens)
        seen.append((how, float(w.sum()), float(mask.sum()) / (len(mask) * max_tokens)))
        return w

    monkeypatch.setattr(ppo_update, "aggregation_weights", spy)
    fixed = {}
    for how in ("token", "sequence", "constant"):
        out = tmp_path / f"fixed-{how}"
        run(*overrides(nano_model, prompts, out, *GRPO, f"algo.loss_agg={how}", "rollout.min_new_tokens=8"))
        fixed[how] = load_weights(out / "final")
    assert_same_weights(fixed["token"], fixed["sequence"], atol=1e-6)
    assert_same_weights(fixed["token"], fixed["constant"], atol=1e-6)
    assert {how for how, _, _ in seen} == {"token", "sequence", "constant"}
    for how, total, mean_len_share in seen:  # one micro-batch per update: its weights are the update's
        assert total == pytest.approx(mean_len_share if how == "constant" else 1.0, abs=1e-5), how

    free = {}
    for how in ("token", "sequence"):
        out = tmp_path / f"free-{how}"
        run(*overrides(nano_model, prompts, out, *GRPO, f"algo.loss_agg={how}"))
        free[how] = load_weights(out / "final")
        lengths = {
            len(json.loads(x)["response"])
            for x in (out / "samples" / "step-2.jsonl").read_text().splitlines()
        }
        assert len(lengths) > 1
    assert max((free["token"][k] - free["sequence"][k]).abs().max().item() for k in free["token"]) > 1e-4


def test_sequence_level_ratio_equals_token_level_on_policy_and_differs_after(nano_model, prompts, tmp_path):
    """algo.ratio_level=sequence (GSPO): one on-policy update (ratio 1) gives the token-level
    gradient, so the runs end alike; with a second pass over each batch the ratios move and the
    runs part."""
    weights = {}
    for epochs in (1, 2):
        for level in ("token", "sequence"):
            out = tmp_path / f"{level}-{epochs}"
            run(
                *overrides(
                    nano_model, prompts, out, *GRPO, f"algo.ratio_level={level}", f"algo.epochs={epochs}"
                )
            )
            weights[level, epochs] = load_weights(out / "final")
    # equal up to float32 rounding of exp(mean) against mean(exp), which Adam scales up where a gradient is ~0
    assert_same_weights(weights["token", 1], weights["sequence", 1], atol=2e-5)
    a, b = weights["token", 2], weights["sequence", 2]
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-3


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_reward_scale_and_uniform_groups(scale, nano_model, prompts, tmp_path, monkeypatch):
    """algo.scale_rewards divides by the group's std, the batch's or nothing; the logged
    uniform_groups is the share of groups whose samples all scored the same (read from the samples)."""
    calls = []
    original = grpo.group_advantages

    def spy(scores, n, how, batch_std=None):
        adv = original(scores, n, how, batch_std=batch_std)
        calls.append((scores.clone(), how, batch_std, adv))
        return adv

    monkeypatch.setattr(grpo, "group_advantages", spy)
    out = tmp_path / scale
    run(*overrides(nano_model, prompts, out, *GRPO, f"algo.scale_rewards={scale}", "rollout.samples_every=1"))
    assert len(calls) == 3
    m = read_metrics(out)
    for (scores, how, batch_std, adv), logged in zip(calls, m):
        assert how == scale
        centred = (scores.view(4, 4) - scores.view(4, 4).mean(1, keepdim=True)).reshape(-1)
        assert logged["score_raw_std"] == pytest.approx(scores.std().item(), rel=1e-5)
        assert ("advantage_scale" in logged) == (scale == "batch")
        if scale == "batch":
            assert batch_std == pytest.approx(scores.std().item(), rel=1e-6)
            assert logged["advantage_scale"] == pytest.approx(batch_std.item(), rel=1e-6)
            assert_close_(adv, centred / (scores.std() + 1e-6))
        elif scale == "none":
            assert_close_(adv, centred)
    for rec in m:
        rows = [
            json.loads(x) for x in (out / "samples" / f"step-{rec['step']}.jsonl").read_text().splitlines()
        ]
        scores = [r["score"] for r in rows]
        groups = [scores[i : i + 4] for i in range(0, 16, 4)]
        assert rec["uniform_groups"] == pytest.approx(sum(len(set(g)) == 1 for g in groups) / 4)


def assert_close_(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_reward_callable_passed_from_python(nano_model, prompts, tmp_path):
    """ppo.train(cfg, reward_fn=...) scores with a closure (no rewards.model / rewards.function);
    giving one of those too is a config error before any work."""
    from rlhf.config import ConfigError

    seen = []

    def closure(prompts, completions, **kw):
        seen.append(len(completions))
        return [float(len(c)) for c in completions]

    out = tmp_path / "closure"
    cfg = load_config(
        ppo.Config, None, overrides(nano_model, prompts, out, "critic.init=policy", "train.max_steps=2")
    )
    ppo.train(cfg, reward_fn=closure)
    assert seen == [8, 8]
    rows = [json.loads(x) for x in (out / "samples" / "step-2.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == [float(len(r["response"])) for r in rows]
    for key in (f"rewards.function={DIGITS}", f"rewards.model={nano_model}"):
        cfg = load_config(
            ppo.Config, None, overrides(nano_model, prompts, tmp_path / "both", "critic.init=policy", key)
        )
        with pytest.raises(ConfigError, match="a reward function was passed to ppo.train"):
            ppo.train(cfg, reward_fn=closure)
        assert not (tmp_path / "both").exists()


def test_clip_high_frees_the_upper_side(nano_model, prompts, tmp_path):
    """Several epochs over each batch move the ratios far: with the symmetric range some tokens are
    clipped above 1 + clip; with algo.clip_high=100 none is, while the lower side still clips."""
    runs = {}
    for name, extra in (("symmetric", []), ("high", ["algo.clip_high=100"])):
        out = tmp_path / name
        run(
            *overrides(
                nano_model, prompts, out, *GRPO, "algo.epochs=4", "train.lr=3e-2", "train.max_steps=4", *extra
            )
        )
        runs[name] = read_metrics(out)
    for r in runs["symmetric"] + runs["high"]:
        assert 0 <= r["clipfrac_high"] <= r["clipfrac"] + 1e-9
    assert max(r["clipfrac_high"] for r in runs["symmetric"]) > 0
    assert all(r["clipfrac_high"] == 0 for r in runs["high"])
    assert max(r["clipfrac"] for r in runs["high"]) > 0


def test_online_dpo_starts_at_log_2_and_logs_its_pairs(nano_model, prompts, tmp_path):
    """At the first update the policy is the reference, so every pair's DPO loss is log 2 and its
    margin 0; the logged pair statistics are means over the prompts that had a preference."""
    out = tmp_path / "odpo"
    run(
        *overrides(
            nano_model,
            prompts,
            out,
            f"rewards.function={DIGITS}",
            *ONLINE,
            "train.batch_size=4",
            "algo.kl_coef=0.1",
            "train.max_steps=3",
            "rollout.samples_every=1",
        )
    )
    m = read_metrics(out)
    assert m[0]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert m[0]["dpo_margin"] == pytest.approx(0.0, abs=1e-5)
    for r in m:
        assert {"dpo_loss", "dpo_accuracy", "dpo_margin", "kl", "uniform_groups"} <= r.keys()
        assert "policy_loss" not in r and "clipfrac" not in r
        rows = [json.loads(x) for x in (out / "samples" / f"step-{r['step']}.jsonl").read_text().splitlines()]
        groups = [[x["score"] for x in rows[i : i + 4]] for i in range(0, 16, 4)]
        assert r["uniform_groups"] == pytest.approx(sum(len(set(g)) == 1 for g in groups) / 4)
        assert 0 <= r["dpo_accuracy"] <= 1
