"""The FastAPI app of `rlhf serve`: OpenAI's chat-completions API over a ``ChatModel``.

    POST /v1/chat/completions   messages -> chat template -> sampled reply; ``stream: true`` sends
                                server-sent events in OpenAI's ``chat.completion.chunk`` format,
                                ending with ``data: [DONE]``
    GET  /v1/models             the one model served
    GET  /health                liveness, no key needed

With an API key set, every /v1 route needs ``Authorization: Bearer <key>``. Bodies over
``max_body`` bytes are refused (413) before they are read in full.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlhf.serve.schemas import ChatRequest, error, validation_error
from rlhf.serve.worker import Generation, cancel_on_disconnect

DEFAULT_MAX_TOKENS = 256
"""max_tokens when a request gives none (cut to what the context leaves)"""
MAX_BODY = 1 << 20
"""bytes: a long conversation is tens of kilobytes"""


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by Content-Length or as it arrives."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise StarletteHTTPException(413, f"request body too large: the limit is {self.limit} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope, receive, send):
        response = error(413, f"request body too large: the limit is {self.limit} bytes", None)
        await response(scope, receive, send)


def _message_dicts(req: ChatRequest) -> list[dict[str, str]]:
    # "developer" is OpenAI's newer name for the system role
    return [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
    ]


def create_app(model, api_key: str | None = None, max_body: int = MAX_BODY) -> FastAPI:
    """The app serving ``model`` (a ``rlhf.serve.model.ChatModel``, or anything with its methods)."""
    from rlhf.serve.model import GenRequest, merge_deltas

    app = FastAPI(title="rlhf serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=max_body)
    started = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return validation_error(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = {401: "authentication_error", 404: "not_found_error"}.get(
            exc.status_code, "invalid_request_error"
        )
        return error(exc.status_code, str(exc.detail), None, kind)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        return error(500, f"internal error: {type(exc).__name__}: {exc}", None, "server_error")

    def authorized(request: Request) -> bool:
        if not api_key:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())

    def unauthorized():
        return error(
            401,
            "missing or wrong API key (send Authorization: Bearer <key>)",
            None,
            "authentication_error",
            "invalid_api_key",
        )

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model.name}

    def card() -> dict[str, Any]:
        return {"id": model.name, "object": "model", "created": started, "owned_by": "rlhf"}

    @app.get("/v1/models")
    async def models(request: Request):
        if not authorized(request):
            return unauthorized()
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{name:path}")
    async def one_model(name: str, request: Request):
        if not authorized(request):
            return unauthorized()
        if name != model.name:
            return error(
                404,
                f"model {name!r} does not exist; this server serves {model.name!r}",
                "model",
                "not_found_error",
                "model_not_found",
            )
        return card()

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        if not authorized(request):
            return unauthorized()
        if req.model != model.name:
            return error(
                404,
                f"model {req.model!r} does not exist; this server serves {model.name!r}",
                "model",
                "invalid_request_error",
                "model_not_found",
            )
        bad = req.unsupported()
        if bad:
            why = "needs logprobs: true" if bad == "top_logprobs" else "is not supported by this server"
            return error(400, f"{bad} {why}", bad)
        try:
            prompt_ids = model.encode(_message_dicts(req))
        except Exception as err:  # a chat template may reject a conversation (e.g. roles out of order)
            return error(400, f"messages: the chat template refused them ({err})", "messages")
        room = model.context - len(prompt_ids)
        if room < 1:
            return error(
                400,
                f"messages: the prompt is {len(prompt_ids)} tokens; the model's context is {model.context}",
                "messages",
                code="context_length_exceeded",
            )
        asked = req.max_completion_tokens or req.max_tokens
        if asked is not None and asked > room:
            field = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
            return error(
                400,
                f"{field}: {asked} new tokens + a {len(prompt_ids)}-token prompt exceed the model's "
                f"context of {model.context} tokens (at most {room})",
                field,
                code="context_length_exceeded",
            )
        gen = GenRequest(
            prompt_ids,
            asked or min(DEFAULT_MAX_TOKENS, room),
            req.temperature,
            req.top_p,
            req.n,
            list(req.stop or []),
            req.seed,
            req.logprobs,
            req.top_logprobs or 0,
        )
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model.name}
        generation = Generation(model.stream, gen)
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return GenerationStream(
                _events(generation, head, usage),
                generation,
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        watcher = asyncio.create_task(cancel_on_disconnect(request.is_disconnected, generation))
        try:
            steps = [deltas async for deltas in generation.deltas()]
        finally:
            watcher.cancel()
            generation.cancel()
        choices = merge_deltas(steps, gen.n)
        completion = sum(c.tokens for c in choices)
        return {
            **head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text, "refusal": None},
                    "logprobs": {"content": [t.to_json() for t in c.logprobs], "refusal": None}
                    if req.logprobs
                    else None,
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": _usage(len(prompt_ids), completion),
        }

    return app


class GenerationStream(StreamingResponse):
    """A streamed answer that stops its generation however the response ends: sent in full, or
    cancelled because the client went away (Starlette cancels the sending task then, and a
    suspended body iterator would only be closed whenever it is garbage-collected)."""

    def __init__(self, content: AsyncIterator[str], generation: Generation, **kw: Any):
        super().__init__(content, **kw)
        self.generation = generation

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.generation.cancel()


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _events(generation: Generation, head: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """The stream: a role chunk per choice, content chunks as text becomes final, a finish chunk
    per choice, optionally a usage chunk, then ``[DONE]``. A failure mid-stream is sent as an
    error event (the status line has already gone out)."""
    base = {**head, "object": "chat.completion.chunk"}
    gen = generation.req

    def chunk(index: int, delta: dict, finish: str | None = None, logprobs: list | None = None) -> str:
        lp = {"content": logprobs, "refusal": None} if logprobs is not None else None
        return _sse(
            {**base, "choices": [{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}]}
        )

    for i in range(gen.n):
        yield chunk(i, {"role": "assistant", "content": ""})
    completion = 0
    try:
        async for deltas in generation.deltas():
            for d in deltas:
                completion += d.tokens
                lps = [t.to_json() for t in d.logprobs] if gen.logprobs else None
                if d.text or lps:
                    yield chunk(d.index, {"content": d.text}, None, lps)
                if d.finish_reason:
                    yield chunk(d.index, {}, d.finish_reason)
    except Exception as err:  # reported to the client, which can no longer get a status code
        yield _sse(
            {
                "error": {
                    "message": f"generation failed: {err}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )
    finally:
        generation.cancel()  # frees the model within one decode step if the client went away
    if include_usage:
        yield _sse({**base, "choices": [], "usage": _usage(len(gen.prompt_ids), completion)})
    yield "data: [DONE]\n\n"
