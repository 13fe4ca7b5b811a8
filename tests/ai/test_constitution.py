"""Constitution files (loading, errors naming the file and principle) and the critique-revision
loop (SL-CAI): prompts built right, revisions fed forward, N rounds recorded."""

from __future__ import annotations

import json
import random

import pytest

from rlhf.config import ConfigError
from rlhf.feedback.constitution import load_constitution
from rlhf.feedback.revise import Reviser, ReviseSection, revise


def test_default_constitution_loads():
    c = load_constitution("default")
    assert len(c.principles) >= 5 and len(c.examples) >= 2
    assert all(p.critique and p.revision and p.comparison.endswith("?") for p in c.principles)
    assert c.sample(random.Random(0)) in c.principles


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "principles:\n  - name: a\n    critique: x\n",
            r"principles\[0\] \('a'\): 'revision' must be a non-empty string",
        ),
        (
            "principles:\n  - name: a\n    critique: x\n    revision: y\n    colour: red\n",
            r"principles\[0\] \('a'\): unknown key\(s\) colour",
        ),
        (
            "principles:\n  - {name: a, critique: x, revision: y}\n  - {name: a, critique: x, revision: y}\n",
            r"principles\[1\] \('a'\): the name 'a' is used twice",
        ),
        ("principles: []\n", "'principles' must be a non-empty list"),
        (
            "principles:\n  - {name: a, critique: x, revision: y}\nexamples:\n  - {principle: b, prompt: p, "
            "response: r, critique: c, revision: v}\n",
            r"examples\[0\]: principle 'b' is not one of a",
        ),
        ("principles: [\n", "not valid YAML"),
    ],
)
def test_bad_constitution_names_the_file_and_principle(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_constitution(path)
    assert str(path) in str(err.value)


def test_prompts_in_text_and_chat_format():
    c = load_constitution("default")
    p = c.principles[0]
    text = Reviser(c, chat=False, few_shot=1)
    crit = text.critique_prompt("How do I bake bread?", "Buy some.", p)
    assert crit.endswith(
        f"Human: How do I bake bread?\n\nAssistant: Buy some.\n\nCritique request: {p.critique}\n\nCritique:"
    )
    assert crit.count("Critique request:") == 2  # one few-shot example, then ours
    rev = text.revision_prompt("How do I bake bread?", "Buy some.", p, "Not an answer.")
    assert rev.endswith(f"Critique: Not an answer.\n\nRevision request: {p.revision}\n\nRevision:")
    chat = Reviser(c, chat=True, few_shot=0).revision_prompt("Hi?", "Go away.", p, "Rude.")
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant", "user"]
    assert chat[-1]["content"] == p.revision and chat[-2]["content"] == "Rude."


class Scripted:
    """An engine that answers from a script ("critique n", "revision n", "initial n") and records
    what it was asked."""

    def __init__(self, constitution):
        self.asked: list = []
        self.critiques = {p.critique for p in constitution.principles}
        self.revisions = {p.revision for p in constitution.principles}

    def generate(self, prompts, params):
        from rlhf.rollout.generate import Generation

        out = []
        for p in prompts:
            self.asked.append(p)
            last = p[-1]["content"] if isinstance(p, list) else p
            kind = (
                "critique" if last in self.critiques else "revision" if last in self.revisions else "initial"
            )
            out.append([Generation([], [], f"{kind} {len(self.asked)}", True)])
        return out


def test_revise_loop_feeds_each_revision_into_the_next_round():
    c = load_constitution("default")
    engine = Scripted(c)
    cfg = ReviseSection(prompts="-", rounds=3, few_shot=0, format="chat")
    records, counts = revise(engine, None, ["q1", "q2"], ["first answer", None], cfg, c)
    # q2 had no response: one sampled, then 3 rounds x (critique + revision) for both prompts
    assert counts == {"prompts": 2, "sampled_initial": 1, "empty_revisions": 0, "truncated_prompts": 0}
    assert len(engine.asked) == 1 + 3 * 2 * 2
    assert records[1]["initial"] == "initial 1"
    r1 = records[0]
    assert r1["initial"] == "first answer" and r1["n_rounds"] == 3 and len(r1["rounds"]) == 3
    assert r1["completion"] == r1["rounds"][-1]["revision"] == "revision 12"
    assert [r["critique"] for r in r1["rounds"]] == ["critique 2", "critique 6", "critique 10"]
    assert {r["principle"] for r in r1["rounds"]} <= {p.name for p in c.principles}
    # round 2's critique prompt shows round 1's revision as the assistant's response
    round2_critique = engine.asked[1 + 4]
    assert round2_critique[1] == {"role": "assistant", "content": r1["rounds"][0]["revision"]}


def test_rlhf_constitution_revise_writes_sft_demonstrations(nano_dir, tmp_path):
    from rlhf.cli import main
    from rlhf.data.records import load_records

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {a} + 2?"}) + "\n" for a in range(3)))
    out, pairs = tmp_path / "rev.jsonl", tmp_path / "rev_pairs.jsonl"
    assert (
        main(
            [
                "constitution",
                "revise",
                f"model.path={nano_dir}",
                f"constitution.prompts={prompts}",
                f"constitution.output={out}",
                f"constitution.pairs_output={pairs}",
                "constitution.rounds=2",
                "constitution.max_new_tokens=6",
                "constitution.format=text",
                "constitution.few_shot=1",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["n_rounds"] == 2 and len(r["rounds"]) == 2 for r in rows)
    assert all(r["constitution"] == "default" for r in rows)
    assert len(load_records(str(out), "demonstration")) == 3  # `rlhf sft` reads them as they are
    assert pairs.exists()


def test_rlhf_constitution_revise_bad_file_is_exit_2(tmp_path, capsys):
    from rlhf.cli import main

    bad = tmp_path / "c.yaml"
    bad.write_text("principles:\n  - name: a\n")
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "hi"}\n')
    code = main(
        [
            "constitution",
            "revise",
            f"model.path={tmp_path}",
            f"constitution.prompts={p}",
            f"constitution.constitution={bad}",
        ]
    )
    assert code == 2
