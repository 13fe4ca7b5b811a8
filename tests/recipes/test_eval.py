"""`rlhf eval`: responses, proxy and gold scores, win rates, KL, diversity and perplexity of a
policy against a baseline; every figure checked against its samples or an independent computation."""

from __future__ import annotations

import json
import math

import pytest

from rlhf.cli import main
from rlhf.config import load_config
from rlhf.data.records import load_records
from rlhf.eval.metrics import distinct_n, repeated_ngram_share, win_rate
from rlhf.recipes import evaluate, sft

from .helpers import question, sft_overrides, token_mean_nll, write_jsonl
from .reward_fns import digits

FN = "tests.recipes.reward_fns:digits"


@pytest.fixture(scope="module")
def eval_prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval_prompts")
    return write_jsonl(d / "eval.jsonl", [{"prompt": question(a, b)} for a in (8, 9) for b in range(8)])


@pytest.fixture(scope="module")
def sft_model(nano_model, data_dir, tmp_path_factory):
    """The nano model after a little SFT: a policy that differs from its base."""
    out = tmp_path_factory.mktemp("sft") / "sft"
    return sft.train(load_config(sft.Config, None, sft_overrides(nano_model, data_dir / "demos.jsonl", out)))


def run(tmp_path, *extra: str) -> dict:
    out = tmp_path / "eval"
    cfg = load_config(evaluate.Config, None, [*extra, f"eval.output_dir={out}", "eval.max_new_tokens=8"])
    evaluate.evaluate(cfg)
    return json.loads((out / "report.json").read_text())


def samples(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]


def test_a_policy_against_itself_ties_everywhere_at_zero_kl(nano_model, eval_prompts, tmp_path):
    report = run(
        tmp_path,
        f"model.path={nano_model}",
        f"eval.prompts={eval_prompts}",
        f"eval.baseline={nano_model}",
        f"eval.reward_function={FN}",
        f"eval.gold={FN}",
    )
    rows = samples(tmp_path)
    assert [r["prompt"] for r in rows] == [question(a, b) for a in (8, 9) for b in range(8)]
    assert all(r["policy"] == r["baseline"] for r in rows)  # greedy: the same model says the same
    for label in ("reward", "gold"):
        w = report["win_rate"][label]
        assert (w["rate"], w["wins"], w["ties"], w["losses"]) == (0.5, 0, 16, 0)
        assert w["low"] == w["high"] == 0.5
    assert report["policy"]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert report["policy"]["kl_responses"] == 16 * 4
    assert report["policy"]["length"] == report["baseline"]["length"]
    assert (tmp_path / "eval" / "config.yaml").is_file()


def test_figures_agree_with_the_samples_and_independent_computations(
    nano_model, sft_model, eval_prompts, reward_model, data_dir, tmp_path, transformers_warnings
):
    """Also: greedy and sampled generation, KL, the reward model and text NLL read no padded batch
    unmasked (transformers warns of one: "We strongly recommend passing in an attention_mask")."""
    with transformers_warnings() as messages:
        report = run(
            tmp_path,
            f"model.path={sft_model}",
            f"eval.prompts={eval_prompts}",
            f"eval.baseline={nano_model}",
            f"eval.reward_model={reward_model}",
            f"eval.gold={FN}",
            f"eval.text={data_dir / 'demos_eval.jsonl'}",
        )
    assert not [m for m in messages if "attention_mask" in m], messages
    rows = samples(tmp_path)
    assert report["prompts"] == len(rows) == 16
    for name in ("policy", "baseline"):
        texts = [r[name] for r in rows]
        s = report[name]
        # the gold scorer here is a plain function: recompute it on the very responses
        assert [r[f"{name}_gold"] for r in rows] == pytest.approx(digits([r["prompt"] for r in rows], texts))
        assert s["gold_mean"] == pytest.approx(sum(r[f"{name}_gold"] for r in rows) / 16)
        assert s["reward_mean"] == pytest.approx(sum(r[f"{name}_reward"] for r in rows) / 16)
        assert s["distinct_2"] == pytest.approx(distinct_n(texts, 2))
        assert s["distinct_1"] == pytest.approx(distinct_n(texts, 1))
        assert s["repeated_bigrams"] == pytest.approx(sum(map(repeated_ngram_share, texts)) / 16)
        assert 0 <= s["no_eos_share"] <= 1 and 0 < s["length"] <= 8
    # the text figure is the token-mean NLL HF's own loss gives, record by record
    records = load_records(str(data_dir / "demos_eval.jsonl"), "demonstration")
    assert report["policy"]["nll"] == pytest.approx(token_mean_nll(sft_model, records), rel=1e-4)
    assert report["baseline"]["nll"] == pytest.approx(token_mean_nll(nano_model, records), rel=1e-4)
    assert report["policy"]["ppl"] == pytest.approx(math.exp(report["policy"]["nll"]), rel=1e-5)
    assert report["policy"]["nll"] < report["baseline"]["nll"]  # SFT on this data reads it better
    for label in ("reward", "gold"):
        w = report["win_rate"][label]
        pol, base = [r[f"policy_{label}"] for r in rows], [r[f"baseline_{label}"] for r in rows]
        assert w["rate"] == pytest.approx(win_rate(pol, base))
        assert w["wins"] + w["ties"] + w["losses"] == 16
        assert w["low"] <= w["rate"] <= w["high"]
    assert report["win_rate"]["reward"] != report["win_rate"]["gold"]  # two scorers, two figures
    # the SFT model has moved away from its base (against itself it is 0, the test above)
    assert report["policy"]["kl"] > 0 and report["policy"]["kl_stderr"] > 0


def test_toy_world_gold_callable_scores_as_the_world_does():
    from rlhf.toyworld import World
    from rlhf.toyworld.reward import gold

    world = World.build(0)
    tasks = world.tasks("eval")[:5]
    responses = [t.statement for t in tasks] + ["I can't help with that."]
    prompts = [t.prompt for t in tasks] + [tasks[0].prompt]
    assert gold(prompts, responses) == [world.gold(p, r) for p, r in zip(prompts, responses)]
    with pytest.raises(KeyError, match="not a task of this world"):
        gold(["What is the meaning of life?\n"], ["42"])


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "eval.prompts or eval.text"),
        (["eval.prompts={prompts}", f"eval.reward_function={FN}", "eval.reward_model={model}"], "both set"),
        (["eval.prompts={prompts}", "eval.baseline=/nope"], "eval.baseline"),
        (["eval.prompts={prompts}", "eval.gold=no_such_module:f"], "eval.gold: cannot import module"),
        (["eval.prompts={prompts}", "eval.reference={model}", "eval.kl_samples=0"], "only used for KL"),
        (["eval.text={prompts}", f"eval.gold={FN}"], "need eval.prompts"),
        (["eval.prompts={prompts}", "eval.top_p=0"], "eval.top_p"),
        (
            ["eval.prompts={prompts}", f"eval.reward_function={FN}", "eval.reward_format=chat"],
            "eval.reward_format=chat",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key(extra, message, nano_model, eval_prompts, tmp_path, capsys):
    extra = [x.format(prompts=eval_prompts, model=nano_model) for x in extra]
    out = tmp_path / "eval"
    assert main(["eval", f"model.path={nano_model}", f"eval.output_dir={out}", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "report.json").exists()


def test_bad_records_and_a_baseline_with_another_tokenizer_are_named(nano_model, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "What is 1 + 2?"}\n{"question": "x"}\n')
    assert (
        main(["eval", f"model.path={nano_model}", f"eval.prompts={bad}", f"eval.output_dir={tmp_path / 'a'}"])
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.jsonl:2: missing field 'prompt'" in err
    assert "Loading weights" not in err  # named before any model is loaded
    # a gold function that returns the wrong number of scores
    args = [f"model.path={nano_model}", f"eval.prompts={bad.with_name('ok.jsonl')}", "eval.max_new_tokens=4"]
    write_jsonl(bad.with_name("ok.jsonl"), [{"prompt": "What is 1 + 2?"}])
    assert (
        main(
            [
                "eval",
                *args,
                "eval.gold=tests.recipes.reward_fns:wrong_length",
                f"eval.output_dir={tmp_path / 'b'}",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                *args,
                "eval.gold=tests.recipes.reward_fns:wrong_length",
                "eval.baseline=" + str(nano_model),
                f"eval.output_dir={tmp_path / 'c'}",
            ]
        )
        == 2
    )
    assert "eval.gold" in capsys.readouterr().err
    # a baseline whose tokenizer reads ids differently cannot be compared token by token
    from rlhf.models.tiny import make_tiny_checkpoint

    from .helpers import corpus

    other = make_tiny_checkpoint(tmp_path / "other", corpus()[:20], vocab_size=280)
    assert main(["eval", *args, f"eval.baseline={other}", f"eval.output_dir={tmp_path / 'd'}"]) == 2
    assert "eval.baseline" in capsys.readouterr().err


def test_eval_help_lists_every_config_key(capsys):
    from .test_cli import check_help_lists_every_key

    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--help"])
    assert exit_.value.code == 0
    check_help_lists_every_key(capsys.readouterr().out, evaluate.Config)


def test_text_only_measures_perplexity_and_writes_no_samples(nano_model, data_dir, tmp_path):
    report = run(tmp_path, f"model.path={nano_model}", f"eval.text={data_dir / 'demos_eval.jsonl'}")
    records = load_records(str(data_dir / "demos_eval.jsonl"), "demonstration")
    assert report["policy"]["nll"] == pytest.approx(token_mean_nll(nano_model, records), rel=1e-4)
    assert "win_rate" not in report and "baseline" not in report and "prompts" not in report
    assert not (tmp_path / "eval" / "samples.jsonl").exists()
