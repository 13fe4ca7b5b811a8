"""What every AI judge returns, and the position-swap that makes it fair.

A judge sees a prompt and two responses and says how likely the first is the better one. LLM
judges favour a position whatever the content (Zheng et al. 2023, "Judging LLM-as-a-Judge with
MT-Bench and Chatbot Arena", sec. 3.3: position bias), so every comparison is asked twice, with
the responses in both orders (Lee et al. 2023, "RLAIF", sec. 2.1.1, does the same), and the two
answers are combined in log-odds:

    l_fwd = logit P(position 1 wins | a shown first)
    l_bwd = logit P(position 1 wins | b shown first)
    P(a > b) = sigmoid((l_fwd - l_bwd) / 2)

Why log-odds and not the mean of the two probabilities: a judge whose log-odds for position 1 are
shifted by a constant c (the simplest model of position bias) gives l_fwd = d + c and
l_bwd = -d + c, and the difference cancels c *exactly*; averaging probabilities only shrinks it.
Either way P(a > b) + P(b > a) = 1 by construction. A judge that picks the same position in both
orders (``Judgement.same_position``) contradicted itself; how often that happens is reported as
the judge's position-bias rate. Hard verdicts (a parsed "A" / "B") are probabilities 0 or 1,
clipped to [EPS, 1 - EPS]: a consistent pair then gives ~1, a contradictory one exactly 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from rlhf.data.records import Prompt

EPS = 1e-6
"""probabilities are clipped to [EPS, 1 - EPS] before the logit, so hard verdicts stay finite"""


class JudgeError(RuntimeError):
    """A judge could not give a verdict: a malformed, refused or unparseable reply, a server error
    after every retry. The message names the endpoint, the model and what was wrong."""


@dataclass(frozen=True)
class Comparison:
    """One question for the judge: which of ``a`` and ``b`` is the better response to ``prompt``."""

    prompt: Prompt
    a: str
    b: str
    criterion: str | None = None
    """the question asked (a constitution principle, RL-CAI); None: the template's default"""


class Judgement(NamedTuple):
    prob: float
    """P(a better than b), both orders combined in log-odds"""
    forward: float
    """P(position 1 wins) with a shown first"""
    backward: float
    """P(position 1 wins) with b shown first"""

    @property
    def same_position(self) -> bool:
        """The judge preferred the same position in both orders: its verdict flipped with the order."""
        return (self.forward > 0.5) == (self.backward > 0.5)


class Judge(Protocol):
    name: str
    """written into the labels' ``annotator`` field as ``ai:<name>``"""

    def judge(self, comparisons: Sequence[Comparison]) -> list[Judgement]:
        """One Judgement per comparison, in order; both orders are asked."""


def logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p) - math.log1p(-p)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def combine_orders(forward: float, backward: float) -> Judgement:
    """P(a > b) from the two one-order answers (module docstring)."""
    return Judgement(sigmoid((logit(forward) - logit(backward)) / 2), forward, backward)


def both_orders(comparisons: Sequence[Comparison]) -> list[tuple[Prompt, str, str, str | None]]:
    """(prompt, first, second, criterion) for every comparison in order a-b, then all in order b-a."""
    fwd = [(c.prompt, c.a, c.b, c.criterion) for c in comparisons]
    return fwd + [(c.prompt, c.b, c.a, c.criterion) for c in comparisons]


def judgements(first_wins: Sequence[float]) -> list[Judgement]:
    """Judgements from P(position 1 wins) over ``both_orders`` (forward half, then backward half)."""
    n = len(first_wins) // 2
    return [combine_orders(f, b) for f, b in zip(first_wins[:n], first_wins[n:])]


def position_stats(results: Sequence[Judgement]) -> dict[str, float | int]:
    """How position-biased the judge was (Zheng et al. 2023's consistency, sec. 3.3).

    ``same_position_rate``: share of comparisons where the judge picked the same position in both
    orders; ``first_position_rate``: share of one-order answers that favoured position 1 (0.5 for
    an unbiased judge).
    """
    n = len(results)
    if n == 0:
        return {"comparisons": 0, "same_position_rate": 0.0, "first_position_rate": 0.0}
    firsts = sum((r.forward > 0.5) + (r.backward > 0.5) for r in results)
    return {
        "comparisons": n,
        "same_position_rate": sum(r.same_position for r in results) / n,
        "first_position_rate": firsts / (2 * n),
    }
