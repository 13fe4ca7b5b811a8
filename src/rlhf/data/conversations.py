"""Preference records whose responses are chat messages, read as the plain formats.

The most common public preference data holds conversations, not strings (TRL's conversational
preference format, UltraFeedback-binarized, chat rankings):

    {"chosen": [{"role": "user", ...}, {"role": "assistant", ...}], "rejected": [...]}
    {"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}
    {"prompt": "...", "chosen": [user, assistant], "rejected": [user, assistant],
     "messages": [...], "score_chosen": 8.0, "score_rejected": 5.0, "prompt_id": "..."}
    {"prompt": [...], "responses": [[{"role": "assistant", ...}], ...], "ranks": [...]}

Each response field may be a string (kept), one assistant message, or a list of messages. A list
must end with an assistant message: that final turn is the response, and the messages before it
are the conversation it answers. Those leading messages must be the same in every response of the
record (otherwise the responses answer different prompts), and they become the prompt, a list of
chat messages rendered with the tokenizer's chat template. A separate ``prompt`` must agree with
them: a message list must begin them (or they continue it, when they begin with an assistant
turn: TRL's explicit-prompt layout), a string must be the content of their first user message
(UltraFeedback repeats the user's turn in both places). Fields the plain formats do not know
(``messages``, ``score_*``, ``prompt_id``) are left alone, and so ignored.
"""

from __future__ import annotations

from typing import Any

from rlhf.data.readers import DataError

RESPONSE_FIELDS = ("chosen", "rejected", "completion")
ROLES = ("system", "user", "assistant", "tool")


def parse_messages(value: Any, where: str, name: str) -> list[dict[str, str]]:
    """A list of chat messages ``{"role", "content"}``, checked; a DataError names ``where`` and ``name``."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field '{name}' must be a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise DataError(f"{where}: {name}[{i}] must be an object with 'role' and 'content'")
        if msg["role"] not in ROLES:
            raise DataError(f"{where}: {name}[{i}].role is {msg['role']!r}; expected one of {ROLES}")
        if not isinstance(msg["content"], str):
            kind = type(msg["content"]).__name__
            raise DataError(f"{where}: field '{name}[{i}].content' must be a string, got {kind}")
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


def _messages(value: Any, where: str, name: str) -> list[dict[str, str]]:
    return parse_messages([value] if isinstance(value, dict) else value, where, name)


def _split_turn(value: Any, where: str, name: str) -> tuple[list[dict[str, str]], str]:
    """(leading messages, final assistant content) of one response given as messages."""
    msgs = _messages(value, where, name)
    if msgs[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: field '{name}' must end with an assistant message (the response); "
            f"its last message is from {msgs[-1]['role']!r}"
        )
    return msgs[:-1], msgs[-1]["content"]


def _first_difference(a: list[dict[str, str]], b: list[dict[str, str]]) -> int:
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k
    return min(len(a), len(b))


def _join_prompt(prompt: Any, context: list[dict[str, str]], where: str, name: str) -> list[dict[str, str]]:
    """The whole prompt of a record with both a ``prompt`` and leading messages ``context``."""
    if isinstance(prompt, str):
        users = [m["content"] for m in context if m["role"] == "user"]
        if not users or users[0] != prompt:
            raise DataError(
                f"{where}: field 'prompt' is not the first user message of the conversation in '{name}'"
            )
        return context
    given = _messages(prompt, where, "prompt")
    if context[0]["role"] == "assistant":  # the response's turns continue the prompt
        return given + context
    if context[: len(given)] != given:
        k = _first_difference(given, context)
        raise DataError(f"{where}: field 'prompt' differs from the conversation in '{name}' at message {k}")
    return context


def flatten_responses(rec: dict[str, Any], where: str) -> dict[str, Any]:
    """``rec`` with every response given as chat messages replaced by its final assistant turn's
    text, and the messages before it (shared by all the responses) as ``prompt``. A record whose
    responses are all strings is returned as it is. DataError names the field at fault."""
    fields: list[tuple[str, Any]] = [
        (f, rec[f]) for f in RESPONSE_FIELDS if isinstance(rec.get(f), list | dict)
    ]
    responses = rec.get("responses")
    if isinstance(responses, list):
        fields += [(f"responses[{i}]", r) for i, r in enumerate(responses) if isinstance(r, list | dict)]
    if not fields:
        return rec
    out = dict(rec)
    if isinstance(responses, list):
        out["responses"] = list(responses)
    context: list[dict[str, str]] | None = None
    first = ""
    for name, value in fields:
        lead, text = _split_turn(value, where, name)
        if context is None:
            context, first = lead, name
        elif lead != context:
            k = _first_difference(context, lead)
            raise DataError(
                f"{where}: fields '{first}' and '{name}' hold different prompts "
                f"(their messages differ at message {k}); a preference compares answers to one prompt"
            )
        if name.startswith("responses["):
            out["responses"][int(name[len("responses[") : -1])] = text
        else:
            out[name] = text
    assert context is not None
    prompt = rec.get("prompt")
    if context:
        out["prompt"] = context if prompt is None else _join_prompt(prompt, context, where, first)
    elif prompt is None:
        raise DataError(
            f"{where}: no 'prompt', and field '{first}' holds no messages before its final assistant turn"
        )
    return out
