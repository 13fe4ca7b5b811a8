"""Simulated raters: people who rank K responses by the gold score, imperfectly.

A rater's perceived utility of a response is

    u = gold + length_bias * log(1 + words) + confidence_bias * (confident phrases)

and the rater ranks by ``u + noise * Gumbel(0, 1)``. Sorting utilities perturbed by Gumbel noise is
exactly sampling a ranking from the Plackett-Luce model with weights ``exp(u / noise)`` (Luce 1959;
Plackett 1975; the Gumbel-max trick), so two responses come out in the Bradley-Terry order with
probability ``sigmoid((u_a - u_b) / noise)``. Noise 0 ranks by ``u`` exactly.

Identical responses (same words after collapsing whitespace) share one utility draw, and any
responses of equal perceived utility share a rank: a tie (competition ranking, "1 2 2 4"). Careless
raters ignore the responses and rank them at random, ties for identical ones kept.

The biases are the classic flaws of human preference data: preferring longer answers, and
trusting a confident tone ("Certainly!", "Definitely"), neither of which the gold score rewards.
A policy optimised against a reward model learned from biased raters can drift toward long,
confident answers while gold falls: reward hacking, reproduced on purpose.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rlhf.toyworld.gold import gold_score
from rlhf.toyworld.world import Task

CONFIDENT_PHRASES = ("certainly", "definitely", "of course", "absolutely", "without a doubt", "i am sure")
_CONFIDENT = re.compile(r"\b(?:" + "|".join(CONFIDENT_PHRASES) + r")\b")


def confidence_markers(text: str) -> int:
    """How many confident phrases ``text`` uses ("Certainly! Definitely 8." -> 2)."""
    return len(_CONFIDENT.findall(text.lower()))


def competition_ranks(values: Sequence[float]) -> list[int]:
    """1 + how many values are strictly larger: highest value -> rank 1, equal values tie.

    >>> competition_ranks([0.5, 2.0, 0.5, -1.0])
    [2, 1, 2, 4]
    """
    return [1 + sum(other > v for other in values) for v in values]


Gold = Callable[[Any, str], float]
"""a truth ``gold(task, response) -> float`` that raters perceive through their biases and noise"""


def _gumbel(rng: random.Random) -> float:
    return -math.log(-math.log(rng.random() or 1e-300))


@dataclass(frozen=True)
class Rater:
    """One simulated annotator."""

    annotator: str
    """id written into ranking records, e.g. "rater-03" """
    noise: float = 0.5
    """Gumbel noise scale: 0 ranks by perceived utility exactly"""
    length_bias: float = 0.0
    """utility per log(1 + words): > 0 prefers longer answers"""
    confidence_bias: float = 0.0
    """utility per confident phrase ("Certainly", "Definitely")"""
    careless: bool = False
    """ranks at random, whatever the responses say"""

    def utility(self, task: Task, response: str, gold: Gold = gold_score) -> float:
        """Perceived utility before noise: ``gold`` plus this rater's biases."""
        return (
            gold(task, response)
            + self.length_bias * math.log1p(len(response.split()))
            + self.confidence_bias * confidence_markers(response)
        )

    def rank(
        self, task: Task, responses: Sequence[str], rng: random.Random, gold: Gold = gold_score
    ) -> list[int]:
        """Ranks (1 = best, equal = tie) of ``responses``, one per response, by ``gold`` + biases + noise."""
        drawn: dict[str, float] = {}
        for response in responses:
            key = " ".join(response.split())
            if key not in drawn:
                if self.careless:
                    drawn[key] = rng.random()
                else:
                    drawn[key] = self.utility(task, response, gold) + (
                        self.noise * _gumbel(rng) if self.noise else 0.0
                    )
        return competition_ranks([drawn[" ".join(r.split())] for r in responses])


@dataclass
class RaterPool:
    """A team of raters with varied noise and biases; ``label`` turns samples into ranking records."""

    raters: list[Rater]

    @classmethod
    def build(
        cls,
        seed: int = 0,
        n_raters: int = 8,
        noise: float = 0.5,
        share_careless: float = 0.1,
        length_bias: float = 0.0,
        confidence_bias: float = 0.0,
        spread: float = 0.5,
    ) -> RaterPool:
        """``round(share_careless * n_raters)`` careless raters; the others draw their noise and
        biases uniformly within ``(1 +- spread)`` times the given values, so raters disagree."""
        if n_raters < 1:
            raise ValueError(f"n_raters must be >= 1, got {n_raters}")
        if not 0 <= share_careless <= 1 or not 0 <= spread <= 1 or noise < 0:
            raise ValueError(
                f"need 0 <= share_careless <= 1, 0 <= spread <= 1 and noise >= 0; got "
                f"share_careless={share_careless}, spread={spread}, noise={noise}"
            )
        rng = random.Random(f"{seed}:raters")
        careless = set(rng.sample(range(n_raters), round(share_careless * n_raters)))

        def jitter(x: float) -> float:
            return x * rng.uniform(1 - spread, 1 + spread)

        raters = [
            Rater(
                f"rater-{i:02d}", jitter(noise), jitter(length_bias), jitter(confidence_bias), i in careless
            )
            for i in range(n_raters)
        ]
        return cls(raters)

    def label(
        self,
        tasks: Sequence[Task],
        candidate_responses: Sequence[Sequence[str]],
        seed: int = 0,
        raters_per_prompt: int = 1,
        gold: Gold = gold_score,
        prompt: Callable[[Any], Any] = lambda task: task.prompt,
    ) -> list[dict]:
        """Ranking records in DESIGN.md's format, ``raters_per_prompt`` (distinct raters) per task:
        {"prompt", "responses", "ranks" (1 = best, equal = tie), "annotator"}. ``gold(task,
        response)`` is the raters' truth (the toy world's by default; any task type works with
        its own); ``prompt(task)`` is what the records' "prompt" holds."""
        if len(tasks) != len(candidate_responses):
            raise ValueError(
                f"label got {len(tasks)} tasks but {len(candidate_responses)} lists of responses"
            )
        if not 1 <= raters_per_prompt <= len(self.raters):
            raise ValueError(
                f"raters_per_prompt={raters_per_prompt} must be between 1 and {len(self.raters)}"
            )
        rng = random.Random(f"{seed}:label")
        records = []
        for i, (task, responses) in enumerate(zip(tasks, candidate_responses)):
            if len(responses) < 2:
                raise ValueError(
                    f"task {i} ({task.prompt!r}) has {len(responses)} responses; ranking needs >= 2"
                )
            for rater in rng.sample(self.raters, raters_per_prompt):
                records.append(
                    {
                        "prompt": prompt(task),
                        "responses": list(responses),
                        "ranks": rater.rank(task, responses, rng, gold),
                        "annotator": rater.annotator,
                    }
                )
        return records
