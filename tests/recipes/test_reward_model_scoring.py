"""Reward models as `rlhf ppo`, `rlhf best-of-n` and `rlhf eval` read them (rlhf.rollout.reward_model):
on the policy's token ids, or on the text with a tokenizer of their own; and what is not one."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rlhf.cli import main
from rlhf.data.records import load_records
from rlhf.eval.metrics import best_of_k, best_of_n_kl
from rlhf.models.loading import ModelError, load_scalar_model, load_tokenizer
from rlhf.recipes import best_of_n
from rlhf.rollout.generate import Generation
from rlhf.rollout.reward_model import RewardModel
from rlhf.sections import ModelConfig

from .helpers import correct, question, read_metrics, repetitive, write_jsonl
from .reward_fns import brevity, digits

DIGITS = "tests.recipes.reward_fns:digits"


def direct_scores(rm_dir, sequences: list[list[int]]) -> list[float]:
    """transformers' own forward, one unpadded sequence at a time."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    with torch.no_grad():
        return [model(input_ids=torch.tensor([s])).logits[0, 0].item() for s in sequences]


def generations(policy_tok, prompts, texts, finished, response_texts=None) -> list[Generation]:
    """Generations as the engine writes them: the policy's ids, the text, whether EOS ended it."""
    out = []
    for p, t, f, rt in zip(prompts, texts, finished, response_texts or texts):
        ids = policy_tok(rt, add_special_tokens=False)["input_ids"] + ([policy_tok.eos_token_id] if f else [])
        out.append(Generation(policy_tok(p)["input_ids"], ids, t, f))
    return out


def test_a_reward_model_with_its_own_tokenizer_reads_the_text(nano_model, foreign_reward_model):
    policy_tok, rm_tok = load_tokenizer(str(nano_model)), load_tokenizer(str(foreign_reward_model))
    rm = RewardModel(str(foreign_reward_model), ModelConfig(), policy_tok, "rewards.model")
    assert not rm.same_vocab and type(rm.model).__name__ == "LlamaForSequenceClassification"
    prompts = [question(1, 2), question(3, 4), question(5, 6), question(7, 1)]
    texts = [correct(1, 2), repetitive(3, 4), "11", correct(7, 1)]
    finished = [True, False, True, False]
    gens = generations(policy_tok, prompts, texts, finished)
    got = rm(prompts, [g.prompt_ids for g in gens], gens, n=1, batch_size=3)  # padded batches
    # as `rlhf reward` tokenized its data: prompt, response, EOS only where the policy ended it
    expected = direct_scores(
        foreign_reward_model,
        [
            rm_tok(p)["input_ids"]
            + rm_tok(t, add_special_tokens=False)["input_ids"]
            + [rm_tok.eos_token_id] * f
            for p, t, f in zip(prompts, texts, finished)
        ],
    )
    torch.testing.assert_close(got, torch.tensor(expected), rtol=0, atol=1e-5)
    # one prompt with n responses reads as the same rows do one by one
    same = [question(2, 2)] * 3
    group = generations(policy_tok, same, [correct(2, 2), "5", repetitive(2, 2)], [True, True, False])
    grouped = rm(same, [g.prompt_ids for g in group], group, n=3)
    torch.testing.assert_close(
        grouped, rm(same, [g.prompt_ids for g in group], group, n=1), rtol=0, atol=1e-5
    )


def test_a_reward_model_on_the_policys_vocabulary_reads_its_token_ids(nano_model, reward_model):
    policy_tok = load_tokenizer(str(nano_model))
    rm = RewardModel(str(reward_model), ModelConfig(), policy_tok, "rewards.model")
    assert rm.same_vocab
    assert rm.statistics is not None  # `rlhf reward` stores the mean and std of its scores
    prompts = [question(1, 2), question(3, 4)]
    # the ids are what the policy generated; the text is not re-read (it says something else here)
    gens = generations(policy_tok, prompts, ["x", "y"], [True, False], [correct(1, 2), repetitive(3, 4)])
    got = rm(prompts, [g.prompt_ids for g in gens], gens)
    expected = direct_scores(reward_model, [g.prompt_ids + g.response_ids for g in gens])
    torch.testing.assert_close(got, torch.tensor(expected), rtol=0, atol=1e-5)


def with_chat_template(model_dir, out, template: str):
    """A copy of ``model_dir`` whose tokenizer has ``template`` as its chat template."""
    out = shutil.copytree(model_dir, out)
    tok = load_tokenizer(str(out))
    tok.chat_template = template
    tok.save_pretrained(str(out))
    return out


def conversation(tok, user: str, assistant: str) -> str:
    """The chat format's text, as transformers renders the conversation."""
    return tok.apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], tokenize=False
    )


def conversation_ids(tok, user: str, assistant: str) -> list[int]:
    return tok(conversation(tok, user, assistant), add_special_tokens=False)["input_ids"]


def test_chat_prompts_are_rendered_by_the_reward_models_own_template(
    nano_model, foreign_reward_model, tmp_path
):
    rm_dir = with_chat_template(
        foreign_reward_model,
        tmp_path / "rm",
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}",
    )
    tok = load_tokenizer(str(rm_dir))
    rm = RewardModel(str(rm_dir), ModelConfig(), load_tokenizer(str(nano_model)), "eval.reward_model")
    messages = [{"role": "user", "content": question(1, 2)}]
    gen = Generation([1, 2, 3], [4], correct(1, 2), True)
    prompt_ids, response_ids = rm.token_ids([messages], [gen.prompt_ids], [gen])
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<user> ")
    assert prompt_ids == [tok(rendered, add_special_tokens=False)["input_ids"]]
    assert response_ids == [tok(correct(1, 2), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]


@pytest.fixture
def chat_reward_model(foreign_reward_model, tmp_path):
    """The foreign reward model with a chat template, as reward models trained on chat transcripts have."""
    return with_chat_template(
        foreign_reward_model,
        tmp_path / "chat-rm",
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}{% if m['role'] == 'assistant' %}"
        "{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}",
    )


def test_the_chat_format_reads_the_whole_conversation_through_the_template(nano_model, chat_reward_model):
    policy_tok, tok = load_tokenizer(str(nano_model)), load_tokenizer(str(chat_reward_model))
    rm = RewardModel(
        str(chat_reward_model),
        ModelConfig(),
        policy_tok,
        "eval.reward_model",
        fmt="chat",
        format_key="eval.reward_format",
    )
    prompts = [question(1, 2), [{"role": "user", "content": question(3, 4)}]]
    gens = generations(
        policy_tok, [question(1, 2), question(3, 4)], [correct(1, 2), repetitive(3, 4)], [True, False]
    )
    conversations = [
        conversation(tok, question(1, 2), correct(1, 2)),
        conversation(tok, question(3, 4), repetitive(3, 4)),
    ]
    assert conversations[0].startswith("<user> ") and conversations[0].rstrip().endswith(tok.eos_token)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in conversations]
    assert rm.token_ids(prompts, [g.prompt_ids for g in gens], gens) == (ids, [[], []])
    got = rm(prompts, [g.prompt_ids for g in gens], gens, n=2)
    torch.testing.assert_close(got, torch.tensor(direct_scores(chat_reward_model, ids)), rtol=0, atol=1e-5)
    # the pair format of the same model reads something else
    pair = RewardModel(str(chat_reward_model), ModelConfig(), policy_tok, "eval.reward_model")
    assert pair.token_ids(prompts, [g.prompt_ids for g in gens], gens)[0] != ids


def without_chat_template(model_dir, out):
    """A copy of ``model_dir`` whose tokenizer has no chat template."""
    out = shutil.copytree(model_dir, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    assert not getattr(load_tokenizer(str(out)), "chat_template", None)
    return out


def test_the_chat_format_needs_a_chat_template(
    nano_model, foreign_reward_model, chat_reward_model, tmp_path, capsys
):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": question(a, 1)} for a in range(3)])
    args = [
        "best-of-n",
        f"model.path={nano_model}",
        f"sample.prompts={prompts}",
        "sample.n=2",
        "sample.max_new_tokens=5",
    ]
    out = tmp_path / "bon"
    plain = without_chat_template(foreign_reward_model, tmp_path / "plain-rm")
    assert (
        main(
            [
                *args,
                f"best_of_n.reward_model={plain}",
                "best_of_n.reward_format=chat",
                f"best_of_n.output_dir={out}",
            ]
        )
        == 2
    )
    assert "best_of_n.reward_format=chat: the tokenizer of best_of_n.reward_model=" in capsys.readouterr().err
    assert (
        main(
            [
                *args,
                f"best_of_n.reward_model={chat_reward_model}",
                "best_of_n.reward_format=turns",
                f"best_of_n.output_dir={out}",
            ]
        )
        == 2
    )
    assert "best_of_n.reward_format" in capsys.readouterr().err
    assert not out.exists()
    assert (
        main(
            [
                *args,
                f"best_of_n.reward_model={chat_reward_model}",
                "best_of_n.reward_format=chat",
                f"best_of_n.output_dir={out}",
            ]
        )
        == 0
    )
    tok = load_tokenizer(str(chat_reward_model))
    for row in (json.loads(x) for x in (out / "scored.jsonl").read_text().splitlines()):
        ids = [conversation_ids(tok, row["prompt"], r) for r in row["responses"]]
        assert row["scores"] == pytest.approx(direct_scores(chat_reward_model, ids), abs=1e-5)


def test_a_causal_lm_or_a_multi_label_classifier_is_not_a_reward_model(nano_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(str(nano_model))
    with pytest.raises(
        ModelError, match=r"rewards.model: .* has no reward head \(score.weight not in the checkpoint\)"
    ):
        load_scalar_model(ModelConfig(path=str(nano_model)), tok, "rewards.model", trained=True)
    # a new head is what `rlhf reward` and a critic start from
    assert load_scalar_model(ModelConfig(path=str(nano_model)), tok).config.num_labels == 1
    two = tmp_path / "two-labels"
    AutoModelForSequenceClassification.from_pretrained(str(nano_model), num_labels=2).save_pretrained(
        str(two)
    )
    tok.save_pretrained(str(two))
    with pytest.raises(ModelError, match="best_of_n.reward_model: .* a reward model has num_labels=1"):
        load_scalar_model(ModelConfig(path=str(two)), tok, "best_of_n.reward_model", trained=True)


@pytest.mark.parametrize(
    "verb, key, written",
    [
        ("ppo", "rewards.model", "config.yaml"),
        ("ppo", "rewards.heldout_model", "config.yaml"),
        ("best-of-n", "best_of_n.reward_model", "scored.jsonl"),
        ("eval", "eval.reward_model", "samples.jsonl"),
    ],
)
def test_each_command_refuses_a_causal_lm_as_its_reward_model(
    verb, key, written, nano_model, reward_model, tmp_path, capsys
):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": question(a, 1)} for a in range(4)])
    out = tmp_path / "out"
    args = {
        "ppo": [f"data.train={prompts}", f"train.output_dir={out}", "train.batch_size=4", "train.max_steps=1"]
        + ([f"rewards.model={reward_model}"] if key != "rewards.model" else []),
        "best-of-n": [f"sample.prompts={prompts}", "sample.n=2", f"best_of_n.output_dir={out}"],
        "eval": [f"eval.prompts={prompts}", f"eval.output_dir={out}"],
    }[verb]
    assert (
        main(
            [
                verb,
                f"model.path={nano_model}",
                *args,
                f"{key}={nano_model}",
                "rollout.max_new_tokens=4"
                if verb == "ppo"
                else "sample.max_new_tokens=4"
                if verb == "best-of-n"
                else "eval.max_new_tokens=4",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{key}: {nano_model} has no reward head" in err
    assert not (out / written).exists()


def test_best_of_n_with_a_reward_function_keeps_its_best(nano_model, tmp_path, capsys):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": question(a, 2)} for a in range(5)])
    out = tmp_path / "bon"
    args = [
        "best-of-n",
        f"model.path={nano_model}",
        f"sample.prompts={prompts}",
        "sample.n=4",
        "sample.max_new_tokens=6",
    ]
    gold = "best_of_n.gold=tests.recipes.reward_fns:brevity"
    assert main([*args, f"best_of_n.reward_function={DIGITS}", gold, f"best_of_n.output_dir={out}"]) == 0
    scored = [json.loads(x) for x in (out / "scored.jsonl").read_text().splitlines()]
    best = [json.loads(x) for x in (out / "best.jsonl").read_text().splitlines()]
    assert len(scored) == 5
    for s, b in zip(scored, best):
        assert s["scores"] == pytest.approx(digits([s["prompt"]] * 4, s["responses"]))
        assert s["gold"] == pytest.approx(brevity([s["prompt"]] * 4, s["responses"]))
        assert s["scores"][s["best"]] == max(s["scores"]) and b["completion"] == s["responses"][s["best"]]
    # best and worst as a preference pair per prompt, none where every score is equal; `rlhf dpo` reads them
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    expected = [best_of_n.best_worst_pair(s["prompt"], s["responses"], s["scores"]) for s in scored]
    assert pairs == [p for p in expected if p is not None] and len(pairs) > 0
    for p in pairs:
        s = next(s for s in scored if s["prompt"] == p["prompt"])
        assert p["chosen"] == s["responses"][s["best"]] and p["chosen"] != p["rejected"]
        assert (
            min(sc for r, sc in zip(s["responses"], s["scores"]) if r != p["chosen"])
            == s["scores"][s["responses"].index(p["rejected"])]
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == len(pairs) and summary["prompts_without_pair"] == 5 - len(pairs)
    assert len(load_records(str(out / "pairs.jsonl"), "preference")) == len(pairs)
    # the best-of-k curve from the same samples: best of 1 is every sample's mean, best of 4 the favourite
    curve = summary["curve"]
    assert [c["n"] for c in curve] == [1, 2, 4]
    assert [c["kl"] for c in curve] == pytest.approx([best_of_n_kl(k) for k in (1, 2, 4)])
    assert curve[0]["score"] == pytest.approx(sum(sum(s["scores"]) / 4 for s in scored) / 5)
    assert curve[0]["gold"] == pytest.approx(sum(sum(s["gold"]) / 4 for s in scored) / 5)
    assert curve[2]["score"] == pytest.approx(sum(max(s["scores"]) for s in scored) / 5)
    assert curve[2]["gold"] == pytest.approx(sum(s["gold"][s["best"]] for s in scored) / 5)
    assert curve[0]["score"] <= curve[1]["score"] <= curve[2]["score"]
    assert curve[1]["gold"] == pytest.approx(sum(best_of_k(s["scores"], s["gold"], 2) for s in scored) / 5)
    for extra, message in (
        ([], "got neither"),
        ([f"best_of_n.reward_function={DIGITS}", f"best_of_n.reward_model={nano_model}"], "got both"),
        (["best_of_n.reward_function=no_such_module:f"], "best_of_n.reward_function: cannot import"),
        (
            [f"best_of_n.reward_function={DIGITS}", "best_of_n.gold=no_such_module:f"],
            "best_of_n.gold: cannot import",
        ),
        (
            [f"best_of_n.reward_function={DIGITS}", "best_of_n.reward_format=chat"],
            "best_of_n.reward_format=chat is how",
        ),
    ):
        assert main([*args, *extra, f"best_of_n.output_dir={tmp_path / 'x'}"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_best_of_n_scores_with_a_reward_model_of_another_tokenizer(
    nano_model, foreign_reward_model, tmp_path
):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": question(a, 3)} for a in range(4)])
    out = tmp_path / "bon"
    assert (
        main(
            [
                "best-of-n",
                f"model.path={nano_model}",
                f"sample.prompts={prompts}",
                "sample.n=3",
                "sample.max_new_tokens=6",
                f"best_of_n.reward_model={foreign_reward_model}",
                f"best_of_n.output_dir={out}",
            ]
        )
        == 0
    )
    tok = load_tokenizer(str(foreign_reward_model))
    for row in (json.loads(x) for x in (out / "scored.jsonl").read_text().splitlines()):
        for response, score in zip(row["responses"], row["scores"]):
            ids = tok(row["prompt"])["input_ids"] + tok(response, add_special_tokens=False)["input_ids"]
            # a response that ended has EOS after it; one cut at max_new_tokens does not
            candidates = direct_scores(foreign_reward_model, [ids, ids + [tok.eos_token_id]])
            assert min(abs(score - c) for c in candidates) < 1e-5, (response, score, candidates)


def test_ppo_against_a_reward_model_of_another_tokenizer(
    nano_model, prompts, foreign_reward_model, tmp_path, capsys
):
    out = tmp_path / "ppo"
    args = [
        "ppo",
        f"model.path={nano_model}",
        f"data.train={prompts}",
        f"rewards.model={foreign_reward_model}",
        "train.batch_size=8",
        "train.max_steps=3",
        "rollout.max_new_tokens=6",
    ]
    # its critic cannot be the reward model: that would read the policy's token ids
    assert main([*args, f"train.output_dir={out}"]) == 2
    assert "critic.init=reward: rewards.model uses another tokenizer" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, f"train.output_dir={out}", "critic.init=policy"]) == 0
    m = read_metrics(out)
    assert [r["step"] for r in m] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["score_raw"])) for r in m)
    # the same reward model reading whole conversations scores the same samples differently
    pair, chat = tmp_path / "pair", tmp_path / "chat"
    for run, fmt in ((pair, "pair"), (chat, "chat")):
        assert (
            main(
                [
                    *args,
                    f"train.output_dir={run}",
                    "critic.init=policy",
                    f"rewards.format={fmt}",
                    "rollout.samples_every=1",
                ]
            )
            == 0
        )
    step_1 = lambda run: [json.loads(x) for x in (run / "samples" / "step-1.jsonl").read_text().splitlines()]  # noqa: E731
    assert [x["response"] for x in step_1(chat)] == [x["response"] for x in step_1(pair)]  # the same samples
    assert [x["score"] for x in step_1(chat)] != pytest.approx([x["score"] for x in step_1(pair)], abs=1e-6)
