"""`rlhf serve` through the official `openai` client and raw HTTP: completions, streaming,
log-probs, stop strings, the API key, and 400s that name the bad field."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from rlhf.serve.model import held_back

from .conftest import API_KEY

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=60) as c:
        yield c


def raw(server, body, key: str | None = API_KEY, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/chat/completions", json=body, headers=headers, timeout=60, **kw)


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["rigged"]


def test_chat_completion_with_logprobs(client):
    r = client.chat.completions.create(
        model="rigged", messages=PROMPT, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = r.choices[0]
    assert choice.finish_reason == "length" and len(choice.message.content) == 5
    assert set(choice.message.content) <= {"A", "B"}  # the rigged model's two favourite tokens
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for t in tokens:
        top = t.top_logprobs
        assert len(top) == 3 and {top[0].token, top[1].token} == {"A", "B"}
        assert top[0].logprob >= top[1].logprob >= top[2].logprob
        assert t.logprob == pytest.approx(top[0].logprob, abs=1e-5)  # greedy picks the most likely token
    assert r.usage.completion_tokens == 5 and r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_streaming_gives_the_same_text_as_a_plain_request(client):
    plain = client.chat.completions.create(model="rigged", messages=PROMPT, max_tokens=6, temperature=0)
    stream = client.chat.completions.create(
        model="rigged",
        messages=PROMPT,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 6


def test_stream_is_server_sent_events_ending_with_done(server):
    body = {"model": "rigged", "messages": PROMPT, "max_tokens": 3, "stream": True, "n": 2, "seed": 1}
    with httpx.stream(
        "POST",
        server.url + "/chat/completions",
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [x for x in r.iter_lines() if x]
    assert all(x.startswith("data: ") for x in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(x[6:]) for x in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    finished = {c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]}
    assert finished == {0, 1}


def test_stop_string_ends_the_reply_and_is_not_returned(client):
    full = client.chat.completions.create(model="rigged", messages=PROMPT, max_tokens=8, temperature=0)
    text = full.choices[0].message.content
    stop = text[2:4]
    cut = client.chat.completions.create(
        model="rigged", messages=PROMPT, max_tokens=8, temperature=0, stop=[stop]
    )
    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible_and_n_gives_n_choices(client):
    kw = dict(model="rigged", messages=PROMPT, max_tokens=6, temperature=1.0, n=3, seed=7)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]


@pytest.mark.parametrize(
    "change, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100000}, "max_tokens"),
        ({"n": 99}, "n"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"tools": [{"type": "function"}]}, "tools"),
    ],
)
def test_bad_request_is_a_400_naming_the_field(server, change, param):
    r = raw(server, {"model": "rigged", "messages": PROMPT, **change})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert param.split("[")[0] in err["message"]


def test_bad_json_unknown_model_missing_key_and_oversize_body(server, client):
    r = httpx.post(
        server.url + "/chat/completions",
        content=b"{not json",
        timeout=30,
        headers={"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = raw(server, {"model": "gpt-4", "messages": PROMPT})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert raw(server, {"model": "rigged", "messages": PROMPT}, key=None).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0).models.list()
    big = {"model": "rigged", "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    r = raw(server, big)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_held_back_text_waits_for_stop_prefixes_and_partial_characters():
    assert held_back("the end", ["end."]) == 3  # "end" may still become "end."
    assert held_back("the end", ["xyz"]) == 0
    assert held_back("caf\ufffd", []) == 1  # half of a UTF-8 character


def test_serve_with_a_missing_model_is_a_clear_error(tmp_path, capsys):
    from rlhf.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_help_the_endpoint_judge_and_the_app_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from rlhf.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['serve', '--help'])\n"
        "from rlhf.feedback.judge import EndpointJudge, JudgeTemplate\n"
        "from rlhf.feedback.judge import run, labels, agreement\n"
        "from rlhf.feedback import constitution\n"
        "from rlhf.serve import app, schemas\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
