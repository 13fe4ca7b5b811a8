"""Candidate sets and pairs in, AI labels out, in the ranking and pair formats of docs/data.md.

A candidate set of K responses is judged on all C(K,2) pairs (each in both orders), and ranked by
each response's **mean win probability** against the others, s_i = mean_j P(i > j): a soft Borda
count. It needs no iterative fit, is exact for K = 2, and agrees with the Bradley-Terry order
whenever the judge's preferences are transitive; equal scores tie. Identical responses are not
sent to the judge: swapping two identical texts gives the same prompt twice, so the swap-combined
answer would be exactly 0.5 anyway.

Soft labels. A ranking record carries ``probs`` (K x K, probs[i][j] = P(response i better than
response j), 0.5 on the diagonal) and ``scores`` (s_i); a pair record carries ``prob`` =
P(chosen better than rejected) >= 0.5, with ``chosen`` the response the judge preferred, the
convention of `rlhf label export --kind pairs`. `rlhf reward` reads both kinds as they are; with
``weight="confidence"`` each pair also gets ``weight = 2 * prob - 1`` (0 for a coin flip, 1 for a
certain judge), which the reward loss multiplies in. Pairs judged exactly 0.5 carry no preference
and are left out of the pair file, counted.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from rlhf.data.readers import DataError, read_records
from rlhf.data.records import Prompt, parse_prompt
from rlhf.feedback.judge.base import Comparison, Judgement


@dataclass
class Item:
    """One input record: a candidate set (K >= 2 responses) or a pair (its two responses)."""

    prompt: Prompt
    responses: list[str]
    id: str | None = None
    principles: dict[tuple[int, int], str] = field(default_factory=dict)
    """principle name per judged pair (with a constitution)"""


@dataclass
class LabelCounts:
    items: int = 0
    comparisons: int = 0
    """pairs sent to the judge (each asked in both orders)"""
    identical: int = 0
    """pairs of identical responses, not judged (P = 0.5)"""
    undecided: int = 0
    """pairs judged exactly 0.5: no pair record"""


def read_items(path: str, what: str = "judge.input") -> list[Item]:
    """Candidate sets ``{prompt, responses}`` (rankings too: their ranks are ignored) or pairs
    ``{prompt, chosen, rejected}``; errors name the file, line and field."""
    items = []
    for where, rec in read_records(path, what):
        if "prompt" not in rec:
            raise DataError(f"{where}: missing field 'prompt'")
        prompt = parse_prompt(rec["prompt"], where)
        if "responses" in rec:
            responses = rec["responses"]
            if not isinstance(responses, list) or len(responses) < 2:
                raise DataError(f"{where}: field 'responses' must be a list of at least 2 strings")
        elif "chosen" in rec and "rejected" in rec:
            responses = [rec["chosen"], rec["rejected"]]
        else:
            raise DataError(
                f"{where}: expected a candidate set ('responses') or a pair ('chosen', 'rejected')"
            )
        for i, r in enumerate(responses):
            if not isinstance(r, str):
                raise DataError(f"{where}: response {i} must be a string, got {type(r).__name__}")
        items.append(Item(prompt, list(responses), None if rec.get("id") is None else str(rec["id"])))
    return items


def comparisons(
    items: list[Item], principles: list[tuple[str, str]] | None = None, seed: int = 0
) -> tuple[list[Comparison], list[tuple[int, int, int]], LabelCounts]:
    """Every pair i < j of distinct responses of every item; with ``principles`` [(name, question)],
    one drawn at random per comparison (Bai et al. 2022, Constitutional AI, sec. 4.1: RL-CAI
    samples a principle for each comparison). Returns comparisons, their (item, i, j), counts."""
    rng = random.Random(f"{seed}:principles")
    out, index, counts = [], [], LabelCounts(items=len(items))
    for n, item in enumerate(items):
        for i, j in itertools.combinations(range(len(item.responses)), 2):
            if item.responses[i] == item.responses[j]:
                counts.identical += 1
                continue
            criterion = None
            if principles:
                name, criterion = rng.choice(principles)
                item.principles[(i, j)] = name
            out.append(Comparison(item.prompt, item.responses[i], item.responses[j], criterion))
            index.append((n, i, j))
    counts.comparisons = len(out)
    return out, index, counts


def competition_ranks(scores: list[float]) -> list[int]:
    """1 + how many scores are strictly larger (rounded, so float noise does not break a tie)."""
    r = [round(s, 9) for s in scores]
    return [1 + sum(o > v for o in r) for v in r]


def to_records(
    items: list[Item],
    index: list[tuple[int, int, int]],
    results: list[Judgement],
    annotator: str,
    counts: LabelCounts,
    weight: str = "none",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranking records, pair records) from the judgements of ``comparisons``' output."""
    if weight not in ("none", "confidence"):
        raise ValueError(f"weight must be 'none' or 'confidence', got {weight!r}")
    probs = [[[0.5] * len(it.responses) for _ in it.responses] for it in items]
    for (n, i, j), r in zip(index, results):
        probs[n][i][j], probs[n][j][i] = r.prob, 1 - r.prob
    rankings, pairs = [], []
    for n, item in enumerate(items):
        k = len(item.responses)
        scores = [sum(probs[n][i][j] for j in range(k) if j != i) / (k - 1) for i in range(k)]
        head = {"id": item.id} if item.id is not None else {}
        rankings.append(
            {
                **head,
                "prompt": item.prompt,
                "responses": item.responses,
                "ranks": competition_ranks(scores),
                "annotator": annotator,
                "scores": [round(s, 6) for s in scores],
                "probs": [[round(p, 6) for p in row] for row in probs[n]],
            }
        )
    for (n, i, j), r in zip(index, results):
        if r.prob == 0.5:
            counts.undecided += 1
            continue
        item = items[n]
        chosen, rejected, p = (i, j, r.prob) if r.prob > 0.5 else (j, i, 1 - r.prob)
        p = round(p, 6)
        rec = {
            "prompt": item.prompt,
            "chosen": item.responses[chosen],
            "rejected": item.responses[rejected],
            "prob": p,
            "annotator": annotator,
        }
        if (i, j) in item.principles:
            rec["principle"] = item.principles[(i, j)]
        if weight == "confidence":
            rec["weight"] = round(2 * p - 1, 6)
        pairs.append(rec)
    return rankings, pairs
