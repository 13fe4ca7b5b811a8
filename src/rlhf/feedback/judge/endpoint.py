"""Any OpenAI-compatible chat-completions server as the judge (`rlhf serve`, vLLM, a hosted API).

Each comparison is two requests (both orders, ``base.combine_orders``). A request asks for
``logprobs`` + ``top_logprobs`` and is read from them when the server returns them, else from
the verdict in its text (``verdict.read_reply``). Around each request:

- a concurrency limit (``asyncio.Semaphore``): at most ``concurrency`` requests in flight;
- retries with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections,
  honouring a ``Retry-After`` header; any other 4xx is the caller's mistake and fails at once,
  quoting the server's message;
- a cache (``cache.JudgeCache``): a reply read once is never paid for again.

Errors (``JudgeError``) name the URL, the model and what was wrong: malformed JSON, no choices, a
refusal, a reply with no verdict, or the last failure after every retry.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from rlhf.feedback.judge.base import Comparison, JudgeError, Judgement, both_orders, judgements
from rlhf.feedback.judge.cache import JudgeCache, request_key
from rlhf.feedback.judge.template import JudgeTemplate
from rlhf.feedback.judge.verdict import read_reply

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""seconds: a longer Retry-After is capped, so a misconfigured server cannot stall a run for hours"""


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        msg = (
            body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        )
        return str(msg or body)[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


class EndpointJudge:
    """Judge through ``{url}/chat/completions``. ``api_key`` None reads ``$OPENAI_API_KEY``."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        template: JudgeTemplate | None = None,
        *,
        logprobs: bool = True,
        top_logprobs: int = 5,
        max_tokens: int = 4,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        cache: JudgeCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not url or not model:
            raise JudgeError(
                "the endpoint judge needs a URL (e.g. http://127.0.0.1:8000/v1) and a model name"
            )
        if concurrency < 1 or max_retries < 0 or max_tokens < 1:
            raise JudgeError("endpoint concurrency and max_tokens must be >= 1, max_retries >= 0")
        self.url, self.model, self.name = url.rstrip("/"), model, model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.template = template or JudgeTemplate()
        self.logprobs, self.top_logprobs, self.max_tokens = logprobs, top_logprobs, max_tokens
        self.concurrency, self.max_retries, self.timeout, self.backoff = (
            concurrency,
            max_retries,
            timeout,
            backoff,
        )
        self.cache, self.transport = cache, transport
        self.where = f"{self.url}/chat/completions (model {model!r})"
        self.stats: Counter[str] = Counter()
        """requests (HTTP requests sent, retries included), retries, cache_hits, logprobs, verdict"""

    def request(self, prompt, first: str, second: str, criterion: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.template.messages(prompt, first, second, criterion),
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        if self.logprobs:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        return body

    def judge(self, comparisons: Sequence[Comparison]) -> list[Judgement]:
        return asyncio.run(self.ajudge(comparisons))

    async def ajudge(self, comparisons: Sequence[Comparison]) -> list[Judgement]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=self.timeout, transport=self.transport
        ) as client:
            requests = [self.request(*item) for item in both_orders(comparisons)]
            keys = [request_key(self.model, r) for r in requests]
            unique = dict(zip(keys, requests))  # the same question twice in a run is asked once
            tasks = {
                k: asyncio.ensure_future(self._first_wins(client, limit, r, k)) for k, r in unique.items()
            }
            try:
                await asyncio.gather(*tasks.values())
            except BaseException:
                for t in tasks.values():  # one failure stops the run: do not keep paying for the rest
                    t.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)
                raise
        return judgements([tasks[k].result() for k in keys])

    async def _first_wins(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, request: dict[str, Any], key: str
    ) -> float:
        body = self.cache.get(key) if self.cache is not None else None
        if body is not None:
            self.stats["cache_hits"] += 1
        else:
            async with limit:
                body = await self._post(client, request)
        p, source = read_reply(body, self.template.options, self.where)
        self.stats[source] += 1
        if self.cache is not None:
            self.cache.put(key, body)  # only a reply that was read successfully is kept
        return p

    async def _post(self, client: httpx.AsyncClient, request: dict[str, Any]) -> Any:
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            self.stats["requests"] += 1
            wait = self.backoff * 2**attempt * (1 + random.random())  # jitter: retries do not arrive together
            try:
                response = await client.post("/chat/completions", json=request)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise JudgeError(
                            f"{self.where}: malformed reply: not JSON ({response.text[:200]!r})"
                        ) from None
                if response.status_code not in RETRY_STATUS:
                    raise JudgeError(f"{self.where}: HTTP {response.status_code}: {_error_message(response)}")
                last = f"HTTP {response.status_code}: {_error_message(response)}"
                retry_after = response.headers.get("retry-after")
                if retry_after is not None:
                    try:
                        wait = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
                    except ValueError:
                        pass
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        raise JudgeError(f"{self.where}: gave up after {self.max_retries + 1} attempts; last: {last}")
