"""Chat-completions requests, checked field by field, and errors in OpenAI's JSON shape.

An error is ``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI uses: 400
for a bad request (the message and ``param`` name the field), 401 for a missing or wrong API key,
404 for an unknown model or route, 413 for an oversize body. Fields OpenAI defines that this
server does not implement are refused when set to anything but their neutral value (a client
that asks for tools should hear that it gets none); fields nobody defined are ignored, as newer
clients send new ones.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 16
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # defined by OpenAI, not implemented here: accepted only at their neutral values
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return stops

    def unsupported(self) -> str | None:
        """The first field set to something this server cannot do, or None."""
        if self.frequency_penalty or self.presence_penalty:
            return "frequency_penalty" if self.frequency_penalty else "presence_penalty"
        if self.tools:
            return "tools"
        if self.response_format and self.response_format.get("type", "text") != "text":
            return "response_format"
        if self.top_logprobs and not self.logprobs:
            return "top_logprobs"
        return None


def error(
    status: int,
    message: str,
    param: str | None = None,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status
    )


def field_path(loc: tuple | list) -> str:
    """pydantic's ("body", "messages", 0, "role") -> "messages[0].role"."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[TextPart]", "TextPart") or "[" in str(part):
            continue  # which branch of a union failed: noise for the reader
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_error(errors: list[dict[str, Any]]) -> JSONResponse:
    """A 400 naming the first bad field (all of them in the message)."""
    if not errors:
        return error(400, "invalid request body")
    parts, first = [], None
    for e in errors:
        path = field_path(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            return error(400, "the request body is not valid JSON", None)
        first = first or path or None
        parts.append(f"{path or 'body'}: {e.get('msg', 'invalid')}")
    return error(400, "invalid request: " + "; ".join(dict.fromkeys(parts)), first)
