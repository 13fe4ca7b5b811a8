"""Demonstrations for SFT: a plain refusal for every harmful request, and for every benign
look-alike the base model's own answer, trimmed to whole sentences.

Taking the base model's answers (rather than text written for it) teaches the one new behaviour,
declining harmful requests, while leaving everything else where the base model had it: the
answers are what it already says, so SFT moves it as little as possible (less forgetting, less KL).
An answer the gold rule does not count as answering (a refusal, off topic) is left out, and counted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from rlhf.realtask.family import Task
from rlhf.realtask.gold import answered_benign, repetition_penalty
from rlhf.realtask.prompts import chat

REFUSAL = "I'm sorry, but I can't help with that."
"""the plain refusal every demonstration opens with"""

REASONS = {
    "violence": "Hurting someone is dangerous and illegal. If you are in conflict with someone, a counselor "
    "or mediator can help.",
    "weapons": "Making weapons or explosives can kill people and is illegal.",
    "drugs": "Making illegal drugs is dangerous and against the law. If you are struggling with drugs, a "
    "doctor or helpline can help.",
    "hacking": "Getting into someone else's account or system without permission is illegal.",
    "theft": "Stealing hurts people and is against the law.",
    "stalking": "That is private information about a private person, and sharing it could put them at risk.",
    "arson": "Setting fires can kill people and is a serious crime.",
    "fraud": "Impersonating a company to take people's money or passwords is fraud.",
}
"""a short second sentence per harmful family (some demonstrations add it)"""

LOOPING = 0.1
"""the repetition penalty (share of repeated word trigrams) above which an answer loops and is not
taught"""

_SENTENCE_END = re.compile(r"(?<=[A-Za-z)\]\"'`*%])[.!?](?=\s|$)")


def refusal(task: Task, rng: random.Random) -> str:
    """A plain refusal, half the time followed by the family's reason."""
    reason = REASONS.get(task.family)
    return f"{REFUSAL} {reason}" if reason and rng.random() < 0.5 else REFUSAL


def trim(text: str, max_words: int) -> str:
    """``text`` cut after its last sentence end (".", "!" or "?" after a word, not a list number)
    within the first ``max_words`` words; "" if there is none. No demonstration stops mid-sentence."""
    text = text.strip()
    best = ""
    for m in _SENTENCE_END.finditer(text):
        prefix = text[: m.end()]
        if len(prefix.split()) > max_words:
            break
        best = prefix
    return best


def usable(task: Task, text: str, max_words: int) -> str:
    """``text`` trimmed to whole sentences if it answers the benign ``task`` without looping;
    "" if it does not (a refusal, off topic, a loop)."""
    answer = trim(text, max_words)
    ok = answered_benign(task, answer) and repetition_penalty(answer) <= LOOPING
    return answer if ok else ""


def build(
    tasks: Sequence[Task],
    base_answers: dict[str, Sequence[str]],
    max_words: int,
    seed: int = 0,
    refusal_kl_weight: float = 1.0,
) -> tuple[list[dict], int]:
    """SFT records ``{"prompt": [user message], "completion"}`` for ``tasks``, and how many benign
    tasks were left out. A benign task's completion is the first of the base model's answers to it
    (``base_answers[task.prompt]``: the greedy one, then any samples) that answers it, trimmed;
    a task none of whose answers does is left out. A refusal carries ``"kl_weight":
    refusal_kl_weight`` when that is not 1 (how much sft.kl_coef holds it to the base model, which
    would not have refused)."""
    rng = random.Random(f"{seed}:demonstrations")
    records, left_out = [], 0
    for task in tasks:
        if task.harmful:
            completion = refusal(task, rng)
        else:
            completion = next(
                (a for a in (usable(task, x, max_words) for x in base_answers[task.prompt]) if a), ""
            )
            if not completion:
                left_out += 1
                continue
        record = {"prompt": chat(task), "completion": completion}
        if task.harmful and refusal_kl_weight != 1.0:
            record["kl_weight"] = refusal_kl_weight
        records.append(record)
    return records, left_out
