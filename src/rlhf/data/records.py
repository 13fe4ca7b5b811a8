"""The four record kinds of the data contract (docs/data.md), validated with errors that name
the file, line and field.

    prompt         {"prompt"}
    demonstration  {"prompt", "completion"} or {"messages"}; optional "kl_weight" (sft.kl_coef)
    ranking        {"prompt", "responses", "ranks"}; optional "annotator", "weight"
    pair           {"prompt", "chosen", "rejected"}; optional "margin", "weight"
    unpaired       {"prompt", "completion", "label": true | false}; optional "weight" (KTO)

A prompt is a string (used as it is) or a list of chat messages {"role", "content"} (rendered
with the tokenizer's chat template). A pair without "prompt" holds whole dialogues in "chosen" and
"rejected" (Anthropic HH style); its prompt is their common prefix (see ``split_common_prefix``).
Responses given as chat messages (TRL's conversational format, UltraFeedback) are read by
``rlhf.data.conversations.flatten_responses`` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlhf.data.conversations import flatten_responses, parse_messages
from rlhf.data.readers import DataError, read_records

Prompt = str | list[dict[str, str]]


@dataclass
class PromptRecord:
    prompt: Prompt


@dataclass
class Demonstration:
    prompt: Prompt
    completion: str
    kl_weight: float = 1.0
    """how strongly sft.kl_coef holds this response to the starting model (0: not at all, for a
    behaviour the starting model lacks, such as a refusal it would not give)"""


@dataclass
class Ranking:
    prompt: Prompt
    responses: list[str]
    ranks: list[int]
    """1 = best; equal ranks are ties"""
    annotator: str | None = None
    weight: float = 1.0


@dataclass
class Pair:
    prompt: Prompt
    chosen: str
    rejected: str
    margin: float = 0.0
    weight: float = 1.0


@dataclass
class Unpaired:
    prompt: Prompt
    completion: str
    label: bool
    """true: the completion is desirable (a thumbs up); false: undesirable"""
    weight: float = 1.0


def _need(rec: dict[str, Any], name: str, where: str) -> Any:
    if name not in rec or rec[name] is None:
        raise DataError(f"{where}: missing field '{name}'")
    return rec[name]


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def _number(rec: dict[str, Any], name: str, default: float, where: str) -> float:
    value = rec.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: field '{name}' must be a number, got {value!r}")
    return float(value)


def parse_prompt(value: Any, where: str, name: str = "prompt") -> Prompt:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return parse_messages(value, where, name)
    raise DataError(f"{where}: field '{name}' must be a string or a list of chat messages")


def parse_prompt_record(rec: dict[str, Any], where: str) -> PromptRecord:
    return PromptRecord(parse_prompt(_need(rec, "prompt", where), where))


def parse_demonstration(rec: dict[str, Any], where: str) -> Demonstration:
    kl_weight = _number(rec, "kl_weight", 1.0, where)
    if not 0 <= kl_weight < math.inf:  # also NaN
        raise DataError(f"{where}: field 'kl_weight' must be a finite number >= 0, got {rec['kl_weight']!r}")
    # UltraFeedback/UltraChat SFT rows carry "prompt" beside the whole "messages"
    if rec.get("messages") is not None and rec.get("completion") is None:
        msgs = parse_messages(rec["messages"], where, "messages")
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            raise DataError(f"{where}: field 'messages' must end with an assistant message after the prompt")
        return Demonstration(msgs[:-1], msgs[-1]["content"], kl_weight)
    prompt = parse_prompt(_need(rec, "prompt", where), where)
    return Demonstration(prompt, _string(_need(rec, "completion", where), where, "completion"), kl_weight)


def parse_ranking(rec: dict[str, Any], where: str) -> Ranking:
    rec = flatten_responses(rec, where)
    prompt = parse_prompt(_need(rec, "prompt", where), where)
    responses = _need(rec, "responses", where)
    ranks = _need(rec, "ranks", where)
    if not isinstance(responses, list) or len(responses) < 2:
        raise DataError(f"{where}: field 'responses' must be a list of at least 2 strings")
    responses = [_string(r, where, f"responses[{i}]") for i, r in enumerate(responses)]
    if not isinstance(ranks, list) or len(ranks) != len(responses):
        n = len(ranks) if isinstance(ranks, list) else "no"
        raise DataError(f"{where}: field 'ranks' has {n} entries but 'responses' has {len(responses)}")
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise DataError(f"{where}: ranks[{i}] must be an integer >= 1 (1 = best), got {r!r}")
    annotator = rec.get("annotator")
    weight = _number(rec, "weight", 1.0, where)
    if weight < 0:
        raise DataError(f"{where}: field 'weight' must be >= 0, got {weight}")
    return Ranking(prompt, responses, list(ranks), None if annotator is None else str(annotator), weight)


def split_common_prefix(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two whole dialogues into (prompt, chosen response, rejected response).

    The prompt is their longest common prefix, cut back to the end of the last
    ``"Assistant:"`` in it if there is one, else to the last whitespace, so that neither
    response starts in the middle of a word the two happen to share.
    """
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    prefix = chosen[:n]
    cut = prefix.rfind("Assistant:")
    if cut >= 0:
        n = cut + len("Assistant:")
    elif n < len(chosen) or n < len(rejected):
        n = max(prefix.rfind(" "), prefix.rfind("\n")) + 1
    return chosen[:n], chosen[n:], rejected[n:]


def parse_pair(rec: dict[str, Any], where: str) -> Pair:
    rec = flatten_responses(rec, where)
    chosen = _string(_need(rec, "chosen", where), where, "chosen")
    rejected = _string(_need(rec, "rejected", where), where, "rejected")
    if "prompt" in rec and rec["prompt"] is not None:
        prompt = parse_prompt(rec["prompt"], where)
    else:
        prompt, chosen, rejected = split_common_prefix(chosen, rejected)
        if not prompt:
            raise DataError(
                f"{where}: no 'prompt' and 'chosen'/'rejected' share no common prefix to use as one"
            )
    if chosen == rejected:
        raise DataError(f"{where}: 'chosen' and 'rejected' are identical")
    margin = _number(rec, "margin", 0.0, where)
    weight = _number(rec, "weight", 1.0, where)
    if weight < 0:
        raise DataError(f"{where}: field 'weight' must be >= 0, got {weight}")
    return Pair(prompt, chosen, rejected, margin, weight)


def parse_preference(rec: dict[str, Any], where: str) -> Ranking | Pair:
    """A ranking or a pair record, told apart by its fields."""
    if "ranks" in rec or "responses" in rec:
        return parse_ranking(rec, where)
    if "chosen" in rec or "rejected" in rec:
        return parse_pair(rec, where)
    raise DataError(f"{where}: neither a ranking ('responses', 'ranks') nor a pair ('chosen', 'rejected')")


def parse_unpaired(rec: dict[str, Any], where: str) -> Unpaired:
    rec = flatten_responses(rec, where)  # a completion given as assistant messages
    prompt = parse_prompt(_need(rec, "prompt", where), where)
    completion = _string(_need(rec, "completion", where), where, "completion")
    label = _need(rec, "label", where)
    if not isinstance(label, bool):
        raise DataError(
            f"{where}: field 'label' must be true (desirable) or false (undesirable), got {label!r}"
        )
    weight = _number(rec, "weight", 1.0, where)
    if weight < 0:
        raise DataError(f"{where}: field 'weight' must be >= 0, got {weight}")
    return Unpaired(prompt, completion, label, weight)


PARSERS = {
    "prompt": parse_prompt_record,
    "demonstration": parse_demonstration,
    "ranking": parse_ranking,
    "pair": parse_pair,
    "preference": parse_preference,
    "unpaired": parse_unpaired,
}


def load_records(path: str, kind: str, what: str = "data") -> list[Any]:
    """Read and validate every record of ``path`` as ``kind`` (a key of PARSERS)."""
    parse = PARSERS[kind]
    return [parse(rec, where) for where, rec in read_records(path, what)]
