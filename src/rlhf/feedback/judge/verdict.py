"""Read a chat-completions reply as P(position 1 wins): from log-probs when the server returns
them, else from the verdict written in the text.

Log-probs (Lee et al. 2023, RLAIF, sec. 2.1): at the first token of the reply, the probability mass
of each option label is summed over the tokens that spell it ("A", " A"), and the two are
normalised against each other. A server lists only its top-k tokens: when one label is missing,
its mass is taken at its upper bound (the smallest listed probability, and at most what the
listed tokens leave over), which keeps the judge's confidence an underestimate, never an
overestimate. When neither label is listed the text verdict is used.

Verdict: the reply starts with a label ("A", "(A)", "**B**.") or names exactly one
("Response B is better."). Anything else, a refusal included, is an error that quotes the reply:
a silent guess would be a label nobody asked for.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rlhf.feedback.judge.base import JudgeError


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def from_logprobs(content: Any, options: tuple[str, str]) -> float | None:
    """P(option 1) from the first token's ``top_logprobs``; None if neither label is there."""
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    top = [e for e in first.get("top_logprobs") or [] if isinstance(e, dict)]
    listed = [first] + top
    seen: dict[str, float] = {}
    for entry in listed:
        token, logprob = entry.get("token"), entry.get("logprob")
        if isinstance(token, str) and isinstance(logprob, int | float) and math.isfinite(logprob):
            seen.setdefault(token, float(logprob))  # the chosen token is listed twice
    mass = [[lp for tok, lp in seen.items() if tok.strip() == opt.strip()] for opt in options]
    if not mass[0] and not mass[1]:
        return None
    if mass[0] and mass[1]:
        la, lb = _logsumexp(mass[0]), _logsumexp(mass[1])
    else:
        left = 1 - sum(math.exp(lp) for lp in seen.values())
        bounds = [math.log(left) if left > 0 else -50.0]
        if top:  # a top-k list: a token not in it is no likelier than its last entry
            bounds.append(min(seen.values()))
        bound = min(bounds)
        la, lb = (_logsumexp(mass[0]), bound) if mass[0] else (bound, _logsumexp(mass[1]))
    return 1 / (1 + math.exp(lb - la))


def parse_verdict(text: str, options: tuple[str, str]) -> int | None:
    """0 for option 1, 1 for option 2, None when the text does not say (module docstring)."""
    a, b = (re.escape(o.strip()) for o in options)
    head = re.match(rf"^[\s*_(\[\"']*({a}|{b})(?![A-Za-z0-9])", text)
    if head:
        return 0 if head.group(1) == options[0].strip() else 1
    named = set(
        re.findall(rf"\b(?:response|answer|option|assistant)\s*[(\[]?({a}|{b})(?![A-Za-z0-9])", text, re.I)
    )
    if len(named) == 1:
        return 0 if named.pop() == options[0].strip() else 1
    return None


def read_reply(body: Any, options: tuple[str, str], where: str) -> tuple[float, str]:
    """(P(position 1 wins), "logprobs" | "verdict") from a chat-completions reply body."""
    if not isinstance(body, dict):
        raise JudgeError(f"{where}: malformed reply: expected a JSON object, got {_short(body)}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise JudgeError(f"{where}: malformed reply: no 'choices' in {_short(body)}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise JudgeError(f"{where}: malformed reply: choices[0] has no 'message' ({_short(choice)})")
    if message.get("refusal"):
        raise JudgeError(f"{where}: the model refused to judge: {_short(message['refusal'])!r}")
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        p = from_logprobs(logprobs.get("content"), options)
        if p is not None:
            return p, "logprobs"
    content = message.get("content")
    if not isinstance(content, str):
        raise JudgeError(f"{where}: malformed reply: message has no text content ({_short(message)})")
    verdict = parse_verdict(content, options)
    if verdict is None:
        reason = (
            "refused or gave no verdict"
            if choice.get("finish_reason") != "content_filter"
            else "was filtered"
        )
        raise JudgeError(
            f"{where}: the model {reason}: expected a reply starting with {options[0]!r} or {options[1]!r}, "
            f"got {_short(content)!r}"
        )
    return (1.0 if verdict == 0 else 0.0), "verdict"
