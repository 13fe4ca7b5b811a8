"""The endpoint judge: against a real `rlhf serve` (log-probs and parsed-verdict paths, the cache,
the `rlhf judge` verb), and against a scripted transport (retries, malformed and refused replies)."""

from __future__ import annotations

import json
import math

import httpx
import pytest
import torch

from rlhf.feedback.judge import Comparison, EndpointJudge, JudgeError, LocalJudge
from rlhf.feedback.judge.cache import JudgeCache

from .conftest import API_KEY

COMPARISONS = [
    Comparison("What is 2 + 3?", " 5.", " 6."),
    Comparison("What is 4 + 4?", "The answer is 8.", " 9."),
    Comparison("What is 1 + 1?", " 2.", "The answer is 3.", "Which answer is right?"),
]


class Counting(httpx.AsyncBaseTransport):
    """A real transport that counts the HTTP requests it sends."""

    def __init__(self):
        self.inner, self.sent = httpx.AsyncHTTPTransport(), 0

    async def handle_async_request(self, request):
        self.sent += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def endpoint(server, **kw) -> EndpointJudge:
    return EndpointJudge(server.url, "rigged", API_KEY, max_tokens=1, backoff=0.01, **kw)


def test_logprob_judge_through_the_server_matches_the_local_judge(server, rigged_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = LocalJudge(
        AutoModelForCausalLM.from_pretrained(rigged_dir), AutoTokenizer.from_pretrained(rigged_dir)
    )
    remote = endpoint(server)
    want, got = local.judge(COMPARISONS), remote.judge(COMPARISONS)
    assert remote.stats["logprobs"] == 2 * len(COMPARISONS) and remote.stats["verdict"] == 0
    for w, g in zip(want, got):
        torch.testing.assert_close(torch.tensor(g), torch.tensor(w), atol=1e-4, rtol=0)
    assert len({round(g.forward, 4) for g in got}) > 1  # the rigged model's answer depends on the input


def test_without_logprobs_the_verdict_is_parsed_from_the_text(server):
    with_lp = endpoint(server).judge(COMPARISONS)
    judge = endpoint(server, logprobs=False)
    parsed = judge.judge(COMPARISONS)
    assert judge.stats["verdict"] == 2 * len(COMPARISONS) and judge.stats["logprobs"] == 0
    for p, w in zip(parsed, with_lp):
        # greedy text says "A" exactly when "A" is the likelier option
        assert (p.forward, p.backward) == (float(w.forward > 0.5), float(w.backward > 0.5))
        assert p.prob + (1 - p.prob) == 1 and 0 <= p.prob <= 1


def test_cache_makes_a_rerun_send_no_request(server, tmp_path):
    first, second = Counting(), Counting()
    a = endpoint(server, cache=JudgeCache(tmp_path / "c.sqlite"), transport=first).judge(COMPARISONS)
    judge = endpoint(server, cache=JudgeCache(tmp_path / "c.sqlite"), transport=second)
    b = judge.judge(COMPARISONS)
    assert first.sent == 2 * len(COMPARISONS) and second.sent == 0
    assert judge.stats["cache_hits"] == 2 * len(COMPARISONS) and a == b


def test_rlhf_judge_endpoint_verb_writes_labels_and_pays_once(server, tmp_path, monkeypatch):
    from rlhf.cli import main
    from rlhf.data.records import load_records

    monkeypatch.setenv("MY_KEY", API_KEY)
    cands = tmp_path / "cands.jsonl"
    cands.write_text(json.dumps({"prompt": "What is 2 + 3?", "responses": [" 5.", " 6.", " 7."]}) + "\n")
    args = [
        "judge",
        "judge.kind=endpoint",
        f"endpoint.url={server.url}",
        "endpoint.model=rigged",
        "endpoint.api_key_env=MY_KEY",
        "endpoint.max_tokens=1",
        f"judge.input={cands}",
        f"judge.rankings_output={tmp_path / 'ai.jsonl'}",
        f"judge.pairs_output={tmp_path / 'pairs.jsonl'}",
    ]
    assert main(args) == 0
    assert main(args) == 0
    report = json.loads((tmp_path / "ai.report.json").read_text())
    assert report["judge_stats"].get("requests", 0) == 0 and report["judge_stats"]["cache_hits"] == 6
    (ranking,) = load_records(str(tmp_path / "ai.jsonl"), "ranking")
    assert ranking.annotator == "ai:rigged" and sorted(ranking.ranks) != [1, 1, 1]


# ---------------------------------------------------------------- scripted servers


def reply(content: str = "A", logprobs: list | None = None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"choices": [choice]}


def scripted(*answers) -> tuple[EndpointJudge, list]:
    """A judge whose server answers with ``answers`` in turn (then repeats the last)."""
    seen: list = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        answer = answers[min(len(seen) - 1, len(answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    judge = EndpointJudge(
        "http://judge.test/v1",
        "m",
        "k",
        max_retries=3,
        backoff=0.001,
        concurrency=1,
        transport=httpx.MockTransport(handle),
    )
    return judge, seen


def test_retries_on_500_429_and_timeouts_then_succeeds():
    judge, seen = scripted(
        httpx.Response(500, json={"error": {"message": "boom"}}),
        httpx.Response(429, headers={"retry-after": "0"}, json={"error": {"message": "slow down"}}),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=reply("A")),
    )
    (result,) = judge.judge(COMPARISONS[:1])
    assert judge.stats["retries"] == 3 and judge.stats["requests"] == 5  # 3 failures, then 2 answers
    assert result.same_position and result.prob == 0.5  # "A" both times: a pure position preference
    assert seen[0]["logprobs"] is True and seen[0]["temperature"] == 0


def test_gives_up_after_the_last_retry_naming_the_status():
    judge, _ = scripted(httpx.Response(503, json={"error": {"message": "overloaded"}}))
    with pytest.raises(JudgeError, match=r"gave up after 4 attempts; last: HTTP 503: overloaded"):
        judge.judge(COMPARISONS[:1])


@pytest.mark.parametrize(
    "response, message",
    [
        (httpx.Response(200, text="<html>oops"), "malformed reply: not JSON"),
        (httpx.Response(200, json={"choices": []}), "no 'choices'"),
        (
            httpx.Response(
                200,
                json={
                    "choices": [
                        {"message": {"role": "assistant", "content": None, "refusal": "I can't judge this."}}
                    ]
                },
            ),
            "refused",
        ),
        (httpx.Response(200, json=reply("Both responses have merit.")), "gave no verdict"),
        (
            httpx.Response(400, json={"error": {"message": "top_logprobs is too large"}}),
            "HTTP 400: top_logprobs",
        ),
    ],
)
def test_malformed_or_refused_reply_is_a_clear_error(response, message):
    judge, seen = scripted(response)
    with pytest.raises(JudgeError, match=message) as err:
        judge.judge(COMPARISONS[:1])
    assert "http://judge.test/v1/chat/completions (model 'm')" in str(err.value)
    assert len(seen) <= 2  # not retried


def test_logprobs_missing_one_option_use_its_upper_bound_and_verdicts_parse():
    top = [{"token": "A", "logprob": -0.1}, {"token": "The", "logprob": -3.0}]
    judge, _ = scripted(
        httpx.Response(200, json=reply("A", [{"token": "A", "logprob": -0.1, "top_logprobs": top}]))
    )
    (r,) = judge.judge(COMPARISONS[:1])
    # P(B) is at most the last listed probability and at most what the listed tokens leave over
    p_a, p_b = math.exp(-0.1), min(math.exp(-3.0), 1 - math.exp(-0.1) - math.exp(-3.0))
    assert r.forward == pytest.approx(p_a / (p_a + p_b))
    from rlhf.feedback.judge.verdict import parse_verdict

    assert [
        parse_verdict(t, ("A", "B"))
        for t in ["B", " (A) is better", "**B**.", "Response B is better.", "A or B, hard to say", "AB"]
    ] == [1, 0, 1, 1, 0, None]


def test_the_same_question_twice_in_a_run_is_asked_once():
    judge, seen = scripted(httpx.Response(200, json=reply("B")))
    results = judge.judge([COMPARISONS[0], COMPARISONS[0], COMPARISONS[1]])
    assert len(seen) == 4 and results[0] == results[1]  # 2 distinct comparisons x 2 orders
