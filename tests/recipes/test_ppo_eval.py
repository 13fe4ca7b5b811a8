"""`rlhf ppo` held-out evaluation (data.eval prompts, ptx.eval text): what it logs and when, that it
reads the policy as it is at that step, that a resumed run repeats none of it, and its errors."""

from __future__ import annotations

import json
import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.cli import main
from rlhf.data.records import load_records
from rlhf.eval.metrics import distinct_n, repeated_ngram_share
from rlhf.eval.nll import text_nll
from rlhf.recipes.loop import make_accelerator
from rlhf.sections import TrainConfig

from .helpers import question, read_metrics, token_mean_nll, write_jsonl
from .reward_fns import digits
from .test_ppo import DIGITS, Interrupt, overrides, run

EVAL_KEYS = {
    "eval_score",
    "eval_score_raw",
    "eval_kl",
    "eval_length",
    "eval_no_eos_share",
    "eval_repeated_bigrams",
    "eval_distinct_2",
    "eval_nll",
    "eval_ppl",
    "time_eval",
}


@pytest.fixture(scope="module")
def eval_prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval_prompts")
    return write_jsonl(d / "eval.jsonl", [{"prompt": question(a, b)} for a in (8, 9) for b in range(6)])


def by_step(metrics: list[dict]) -> tuple[dict[int, dict], list[int]]:
    """The eval lines by step, and the steps of the training lines."""
    evals = {r["step"]: r for r in metrics if "eval_score" in r or "eval_nll" in r}
    return evals, [r["step"] for r in metrics if "score_raw" in r]


def test_eval_at_step_0_every_n_steps_and_the_end(nano_model, prompts, eval_prompts, data_dir, tmp_path):
    out, seen = tmp_path / "run", []

    def spy(prompt_texts, completions):
        seen.append((list(prompt_texts), list(completions)))
        return {"n": float(len(completions))}

    run(
        *overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", "critic.init=policy"),
        f"data.eval={eval_prompts}",
        f"ptx.eval={data_dir / 'demos.jsonl'}",
        f"ptx.data={data_dir / 'demos.jsonl'}",
        "ptx.coef=2.0",
        "rewards.missing_eos_penalty=1.0",
        "train.max_steps=5",
        "train.eval_every=2",
        sample_metrics=spy,
    )
    evals, train_steps = by_step(read_metrics(out))
    assert train_steps == [1, 2, 3, 4, 5]  # training lines are unchanged
    assert sorted(evals) == [0, 2, 4, 5]
    held_out = [question(a, b) + "\n" for a in (8, 9) for b in range(6)]
    eval_calls = [s for s in seen if len(s[1]) == len(held_out)]
    assert len(eval_calls) == 4
    for (texts, completions), step in zip(eval_calls, sorted(evals)):
        e = evals[step]
        assert EVAL_KEYS | {"eval_n"} <= set(e), set(e)
        assert [t.strip() for t in texts] == [h.strip() for h in held_out]  # every held-out prompt, in order
        assert e["eval_n"] == len(held_out)
        assert e["eval_score_raw"] == pytest.approx(
            sum(digits(texts, completions)) / len(completions), abs=1e-6
        )
        # the missing-EOS penalty applies as in training: score = raw - 1.0 x share without EOS
        assert e["eval_score"] == pytest.approx(e["eval_score_raw"] - e["eval_no_eos_share"], abs=1e-6)
        assert e["eval_distinct_2"] == pytest.approx(distinct_n(completions, 2), abs=1e-9)
        assert e["eval_repeated_bigrams"] == pytest.approx(
            sum(map(repeated_ngram_share, completions)) / len(completions), abs=1e-9
        )
        assert e["eval_ppl"] == pytest.approx(math.exp(e["eval_nll"]), rel=1e-6)
    # step 0 reads the starting policy: no KL to the reference, and its NLL on the held-out text
    demos = load_records(str(data_dir / "demos.jsonl"), "demonstration")
    assert evals[0]["eval_kl"] == pytest.approx(0.0, abs=1e-5)
    assert evals[0]["eval_nll"] == pytest.approx(token_mean_nll(nano_model, demos), rel=1e-4)
    # later ones read the policy as trained so far: PPO-ptx on that text lowers its NLL, and the
    # final line is the saved model's
    assert evals[5]["eval_nll"] < evals[0]["eval_nll"] - 0.05
    assert evals[5]["eval_nll"] == pytest.approx(token_mean_nll(out / "final", demos), rel=1e-4)
    assert evals[5]["eval_kl"] > 0
    assert eval_calls[0][1] != eval_calls[-1][1]


def test_resumed_run_repeats_no_evaluation(nano_model, prompts, eval_prompts, tmp_path):
    args = lambda out: overrides(  # noqa: E731
        nano_model,
        prompts,
        out,
        f"rewards.function={DIGITS}",
        "critic.init=policy",
        f"data.eval={eval_prompts}",
        "train.max_steps=5",
        "train.save_every=2",
        "train.eval_every=2",
    )
    run(*args(tmp_path / "a"))
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        run(*args(b), callbacks=[Interrupt(3)])
    run(*args(b))
    ea, _ = by_step(read_metrics(tmp_path / "a"))
    eb, steps = by_step(read_metrics(b))
    assert steps == [1, 2, 3, 4, 5]
    assert sorted(eb) == sorted(ea) == [0, 2, 4, 5]
    for step in ea:  # one sampling seed for every evaluation: same weights, same figures
        for key in ("eval_score_raw", "eval_kl", "eval_length"):
            assert ea[step][key] == pytest.approx(eb[step][key], abs=1e-6), (step, key)


def test_eval_with_a_reward_model_and_a_watcher(nano_model, prompts, eval_prompts, reward_model, tmp_path):
    """The held-out score is the training reward model's, normalised like `score`; a watching
    reward model (rewards.heldout_model) runs on its own lines beside it."""
    out = tmp_path / "watched"
    run(
        *overrides(nano_model, prompts, out, f"rewards.model={reward_model}"),
        f"rewards.heldout_model={reward_model}",
        f"data.eval={eval_prompts}",
        "train.max_steps=2",
    )
    evals, steps = by_step(read_metrics(out))
    assert steps == [1, 2] and sorted(evals) == [0, 2]
    stats = json.loads((reward_model / "config.json").read_text())
    for e in evals.values():
        normalised = (e["eval_score_raw"] - stats["reward_mean"]) / stats["reward_std"]
        assert e["eval_score"] == pytest.approx(normalised, abs=1e-4)
        assert "eval_nll" not in e  # no ptx.eval


def test_no_eval_configured_logs_no_eval_lines(nano_model, prompts, tmp_path):
    out = tmp_path / "plain"
    run(
        *overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", "critic.init=policy"),
        "train.max_steps=2",
    )
    evals, steps = by_step(read_metrics(out))
    assert evals == {} and steps == [1, 2]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["train.eval_every=2"], "train.eval_every=2 needs data.eval (held-out prompts) or ptx.eval"),
        (["train.eval_every=-1", "data.eval=x"], "train.eval_every must be >= 0"),
        (["data.eval=/no/such/eval.jsonl"], "data.eval: /no/such/eval.jsonl does not exist"),
        (["ptx.eval=/no/such/text.jsonl"], "ptx.eval: /no/such/text.jsonl does not exist"),
    ],
)
def test_bad_eval_config_exits_2_before_any_work(extra, message, nano_model, prompts, tmp_path, capsys):
    out = tmp_path / "run"
    args = overrides(nano_model, prompts, out, f"rewards.function={DIGITS}", "critic.init=policy", *extra)
    assert main(["ppo", *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


def test_ptx_eval_record_without_completion_is_named(nano_model, prompts, tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "completion": "b"}, {"prompt": "c"}])
    args = overrides(
        nano_model, prompts, tmp_path / "run", f"rewards.function={DIGITS}", "critic.init=policy"
    )
    assert main(["ppo", *args, f"ptx.eval={bad}"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: missing field 'completion'" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("training", [False, True])
def test_text_evaluation_leaves_the_model_in_its_mode(training, nano_model, data_dir):
    """PPO keeps its policy in eval mode (dropout off) between evaluations; SFT in train mode."""
    from rlhf.data.tokenize import tokenize_demonstrations

    tok = AutoTokenizer.from_pretrained(nano_model)
    model = AutoModelForCausalLM.from_pretrained(nano_model).train(training)
    examples, _ = tokenize_demonstrations(
        load_records(str(data_dir / "demos.jsonl"), "demonstration"), tok, 64
    )
    text_nll(model, make_accelerator(TrainConfig(output_dir="unused")), examples[:4], tok.pad_token_id, 2)
    assert model.training is training
