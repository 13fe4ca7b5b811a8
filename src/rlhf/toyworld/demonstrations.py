"""SFT demonstrations as contract writers would produce them: mostly good, not all.

One demonstration per task of the "sft" split (never eval, so knowledge eval asks about facts that
no demonstration states). Qualities, assigned by exact counts and shuffled:

    concise   the bare answer or one full sentence; a short decline for harmful requests
    verbose   the same wrapped in pleasantries ("Great question! ... I hope this helps!")
    wrong     a wrong number, entity or order; compliance with a harmful request;
              a refusal or wrong recipe for a benign one

``write_response`` is also useful on its own: canned responses of known quality for any task, for
tests of reward models and raters that need no language model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlhf.toyworld.world import Task, World

QUALITIES = ("concise", "verbose", "wrong")
DECLINES = (
    "I can't help with that.",
    "I cannot help with that request.",
    "Sorry, I won't help make something harmful.",
)
OPENERS = (
    "Great question!",
    "Sure, let me help with that.",
    "Let me think about this.",
    "Thanks for asking.",
    "Certainly!",
    "Good question, here is what I know.",
)
CLOSERS = (
    "I hope this helps!",
    "Let me know if you have other questions.",
    "Have a nice day.",
    "That is my answer to your question.",
)


@dataclass(frozen=True)
class Demonstration:
    """A demonstration and how good its writer made it."""

    prompt: str
    completion: str
    quality: str
    """one of QUALITIES"""
    family: str

    def record(self) -> dict[str, str]:
        """The DESIGN.md demonstration record: {"prompt", "completion"}."""
        return {"prompt": self.prompt, "completion": self.completion}


def _wrong_answer(task: Task, rng: random.Random) -> str:
    if task.family == "arithmetic":
        value = int(task.answer or 0)
        return str(rng.choice([v for v in (value - 2, value - 1, value + 1, value + 2) if v >= 0]))
    if task.family == "transform":
        if len(task.expected) > 1:  # reverse: give the words back unchanged
            return " ".join(task.expected[::-1])
        others = [w for w in task.vocabulary if w in task.question.split() and w != task.expected[0]]
        return rng.choice(others)
    if task.family == "benign":
        return f"Mix {' and '.join(rng.sample([w for w in task.vocabulary if w not in task.expected], 2))}."
    others = [w for w in task.vocabulary if w != (task.answer or "").lower()]
    return rng.choice(others).capitalize() if task.fact.startswith("capital") else rng.choice(others)


def write_response(task: Task, quality: str, rng: random.Random) -> str:
    """A response to ``task`` of the given quality ("concise", "verbose" or "wrong")."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; qualities are {', '.join(QUALITIES)}")
    if task.should_decline:
        if quality == "wrong":
            return f"Mix {' and '.join(rng.sample(task.unsafe_words, 2))}."
        decline = rng.choice(DECLINES + (task.statement,))
        if quality == "concise":
            return decline
        return f"{decline} It could hurt someone. Please stay safe."
    if quality == "wrong":
        if task.family == "benign" and rng.random() < 0.5:
            return rng.choice(DECLINES)
        answer = _wrong_answer(task, rng)
        return rng.choice([answer, f"It is {answer}."]) if task.family != "benign" else answer
    concise = rng.choice([task.answer or "", task.statement])
    if quality == "concise":
        return concise
    return f"{rng.choice(OPENERS)} {task.statement} {rng.choice(CLOSERS)}"


def build_demonstrations(
    world: World, seed: int | None = None, verbose_share: float = 0.15, wrong_share: float = 0.10
) -> list[Demonstration]:
    """One demonstration per "sft" task; ``seed`` defaults to the world's seed."""
    if not (0 <= verbose_share and 0 <= wrong_share and verbose_share + wrong_share <= 1):
        raise ValueError(
            f"shares must be >= 0 and sum to <= 1, got verbose_share={verbose_share}, "
            f"wrong_share={wrong_share}"
        )
    rng = random.Random(f"{world.seed if seed is None else seed}:demonstrations")
    tasks = world.tasks("sft")
    n_verbose, n_wrong = round(verbose_share * len(tasks)), round(wrong_share * len(tasks))
    qualities = ["verbose"] * n_verbose + ["wrong"] * n_wrong
    qualities += ["concise"] * (len(tasks) - len(qualities))
    rng.shuffle(qualities)
    return [Demonstration(t.prompt, write_response(t, q, rng), q, t.family) for t, q in zip(tasks, qualities)]
