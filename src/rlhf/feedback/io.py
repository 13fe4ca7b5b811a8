"""Import candidate sets, export rankings and aggregated pairs, in the project's data formats.

Import (JSONL, or what ``rlhf.data.readers`` reads), one candidate set a line::

    {"prompt": "...", "responses": ["...", "..."], "ranks": [1, 2] (optional: gold), "id": "q17" (optional)}

A task is keyed by its ``id``, or by a hash of its prompt and responses when it has none, so
importing the same file twice adds nothing. A file with any bad line imports nothing.

Export, ``rankings``: one line per (task, rater) in the ranking format of docs/data.md,
``{"prompt", "responses", "ranks", "annotator"}`` (ties are equal ranks), which ``rlhf reward``
reads as it is. ``pairs``: one line per (task, response pair) that the raters of a task decided,
``{"prompt", "chosen", "rejected", "prob", "votes"}`` where ``prob`` is the fraction of the
task's raters who preferred ``chosen`` (a tie counts half a vote each way), always > 0.5: a soft
label for a Bradley-Terry loss that takes one. With ``weight="agreement"`` each pair also gets
``"weight": 2 * prob - 1`` (1 when unanimous), which ``rlhf reward`` multiplies into its loss.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from rlhf.data.conversations import flatten_responses
from rlhf.data.readers import DataError, Located, parse_jsonl_lines, read_records
from rlhf.data.records import parse_prompt, parse_ranking
from rlhf.feedback.db import Database, Label, Rater, Task
from rlhf.feedback.projects import get_project
from rlhf.feedback.submit import dense_ranks

MAX_RESPONSES = 26
"""responses are labelled A..Z on the page"""
MAX_ID = 200
IMPORT_FIELDS = ("prompt", "responses", "ranks", "id")


@dataclass
class Candidate:
    external_id: str
    prompt: Any
    responses: list[str]
    gold_ranks: list[int] | None
    where: str


@dataclass
class ImportResult:
    added: int = 0
    gold: int = 0
    """of the added, tasks with a gold ranking"""
    already_present: int = 0


@dataclass
class PairCounts:
    tasks: int = 0
    pairs: int = 0
    no_majority: int = 0
    """pairs the raters split evenly on (or all tied): no preference to export"""
    identical: int = 0
    """pairs whose two responses are the same text"""
    below_min_votes: int = 0
    by_votes: Counter = field(default_factory=Counter)


def content_id(prompt: Any, responses: list[str]) -> str:
    blob = json.dumps([prompt, responses], sort_keys=True, ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:32]


def _check_keys(rec: dict[str, Any], where: str) -> None:
    """An unknown key is an error, not ignored: a misspelt "rank" would import a gold task as ungraded."""
    for key in rec:
        if key not in IMPORT_FIELDS:
            close = difflib.get_close_matches(str(key), IMPORT_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"{where}: unknown field {key!r}{hint}; the fields are {', '.join(IMPORT_FIELDS)}"
            )


def _check_gold_ranks(ranks: list[int], where: str) -> None:
    k = len(ranks)
    for i, r in enumerate(ranks):
        if r > k:
            raise DataError(
                f"{where}: ranks[{i}] is {r}, but with {k} responses a rank goes from 1 (best) to {k}"
            )


def parse_candidate(rec: dict[str, Any], where: str) -> Candidate:
    """Validate one import record; DataError names the line and field."""
    _check_keys(rec, where)
    rec = flatten_responses(rec, where)  # responses given as assistant messages
    if "prompt" not in rec:
        raise DataError(f"{where}: missing field 'prompt' (expected fields: {', '.join(IMPORT_FIELDS)})")
    prompt = parse_prompt(rec["prompt"], where)
    responses = rec.get("responses")
    if not isinstance(responses, list) or not 2 <= len(responses) <= MAX_RESPONSES:
        raise DataError(f"{where}: field 'responses' must be a list of 2 to {MAX_RESPONSES} strings")
    gold = None
    if rec.get("ranks") is not None:
        ranking = parse_ranking({"prompt": prompt, "responses": responses, "ranks": rec["ranks"]}, where)
        _check_gold_ranks(ranking.ranks, where)
        gold = dense_ranks(ranking.ranks)
    else:
        for i, r in enumerate(responses):
            if not isinstance(r, str):
                raise DataError(f"{where}: field 'responses[{i}]' must be a string, got {type(r).__name__}")
    ext = rec.get("id")
    if ext is None:
        ext = content_id(prompt, responses)
    elif isinstance(ext, bool) or not isinstance(ext, str | int) or not 0 < len(str(ext)) <= MAX_ID:
        raise DataError(
            f"{where}: field 'id' must be a non-empty string or integer of at most {MAX_ID} characters"
        )
    return Candidate(str(ext), prompt, list(responses), gold, where)


def parse_jsonl_text(text: str, source: str) -> list[Located]:
    """Records of JSONL ``text`` (an uploaded file), located as ``source:line``."""
    rows = parse_jsonl_lines(text.split("\n"), source)  # as the CLI reads a file: same lines, same columns
    if not rows:
        raise DataError(f"{source}: no records")
    return rows


def import_records(db: Database, project_name: str, records: list[Located]) -> ImportResult:
    """Add the candidate sets of ``records`` to a project, all or nothing."""
    with db.read() as s:
        get_project(s, project_name)  # an unknown project is reported before a long file is checked
    candidates = [parse_candidate(rec, where) for where, rec in records]
    result = ImportResult()
    with db.write() as s:
        project = get_project(s, project_name)
        ids = [c.external_id for c in candidates]
        existing = {
            t.external_id: t
            for chunk in range(0, len(ids), 500)
            for t in s.scalars(
                select(Task).where(
                    Task.project_id == project.id, Task.external_id.in_(ids[chunk : chunk + 500])
                )
            )
        }
        seen: dict[str, Candidate] = {}
        for c in candidates:
            old = existing.get(c.external_id)
            earlier = seen.get(c.external_id)
            same = (
                (old.prompt, old.responses)
                if old
                else (earlier.prompt, earlier.responses)
                if earlier
                else None
            )
            if same is not None:
                if same != (c.prompt, c.responses):
                    raise DataError(
                        f"{c.where}: id {c.external_id!r} is already in project {project_name!r} "
                        "with a different prompt or responses"
                    )
                result.already_present += 1
                continue
            seen[c.external_id] = c
            s.add(
                Task(
                    project_id=project.id,
                    external_id=c.external_id,
                    prompt=c.prompt,
                    responses=c.responses,
                    k=len(c.responses),
                    is_gold=c.gold_ranks is not None,
                    gold_ranks=c.gold_ranks,
                )
            )
            result.added += 1
            result.gold += c.gold_ranks is not None
    return result


def import_file(db: Database, project_name: str, path: str | Path) -> ImportResult:
    """Import a JSONL / parquet / `datasets` file of candidate sets."""
    return import_files(db, project_name, [path])


def import_files(db: Database, project_name: str, paths: list[str | Path]) -> ImportResult:
    """Import several files as one: every file is read and checked first, then all are added in one
    transaction, so a bad later file leaves nothing of the earlier ones behind."""
    records: list[Located] = []
    for path in paths:
        records += read_records(path, "import file")
    return import_records(db, project_name, records)


# ---------------------------------------------------------------- export


def _rank_labels(s, project_id: int, include_gold: bool) -> list[tuple[Label, Task, str]]:
    query = (
        select(Label, Task, Rater.name)
        .join(Task, Task.id == Label.task_id)
        .join(Rater, Rater.id == Label.rater_id)
        .where(Label.project_id == project_id, Label.kind == "rank")
        .order_by(Task.id, Rater.name)
    )
    if not include_gold:
        query = query.where(Task.is_gold.is_(False))
    return [tuple(row) for row in s.execute(query).all()]


def _adjudicated(s, project_id: int, include_gold: bool) -> list[tuple[Task, list[int]]]:
    from rlhf.feedback.review import latest_adjudications

    out = []
    for task_id, ranks in sorted(latest_adjudications(s, project_id).items()):
        task = s.get(Task, task_id)
        if include_gold or not task.is_gold:
            out.append((task, ranks))
    return out


def export_rankings(
    db: Database, project_name: str, with_metadata: bool = False, include_gold: bool = True
) -> list[dict[str, Any]]:
    """One ranking record per (task, rater), each rater's latest version (a revision or the admin's
    correction), then one per adjudicated task with ``"annotator": "adjudication"``."""
    from rlhf.feedback.review import record_export

    with db.read() as s:
        project = get_project(s, project_name)
        rows = _rank_labels(s, project.id, include_gold)
        adjudicated = _adjudicated(s, project.id, include_gold)
    out = []
    for label, task, rater in rows:
        rec: dict[str, Any] = {
            "prompt": task.prompt,
            "responses": task.responses,
            "ranks": label.ranks,
            "annotator": rater,
        }
        if with_metadata:
            rec.update(
                task=task.external_id,
                gold=task.is_gold,
                scores=label.scores,
                flags=label.flags,
                display_order=label.display_order,
                seconds=round(label.seconds, 3),
                submitted_at=label.created_at,
            )
        out.append(rec)
    for task, ranks in adjudicated:
        rec = {
            "prompt": task.prompt,
            "responses": task.responses,
            "ranks": ranks,
            "annotator": "adjudication",
        }
        if with_metadata:
            rec.update(task=task.external_id, gold=task.is_gold)
        out.append(rec)
    record_export(db, project.id, "rankings")
    return out


def export_pairs(
    db: Database, project_name: str, min_votes: int = 1, weight: str = "none", include_gold: bool = True
) -> tuple[list[dict[str, Any]], PairCounts]:
    """Pairs aggregated over each task's raters, with the vote fraction ``prob`` (see module doc).

    An adjudicated task's pairs come from its latest adjudication alone (``prob`` 1, and
    ``"adjudicated": true``): the admin's decision replaces the vote."""
    from rlhf.feedback.review import record_export

    if weight not in ("none", "agreement"):
        raise ValueError(f"weight must be 'none' or 'agreement', got {weight!r}")
    with db.read() as s:
        project = get_project(s, project_name)
        rows = _rank_labels(s, project.id, include_gold)
        adjudicated = _adjudicated(s, project.id, include_gold)
    tasks: dict[int, Task] = {}
    by_task: dict[int, list[list[int]]] = defaultdict(list)
    for label, task, _ in rows:
        tasks[task.id] = task
        by_task[task.id].append(label.ranks)
    final = {task.id: ranks for task, ranks in adjudicated}
    for task, _ in adjudicated:
        tasks[task.id] = task
        by_task.setdefault(task.id, [])
    out, counts = [], PairCounts()
    for task_id, rankings in by_task.items():
        task = tasks[task_id]
        counts.tasks += 1
        n = len(rankings)
        decided = [final[task_id]] if task_id in final else rankings
        for i, j in itertools.combinations(range(len(task.responses)), 2):
            if n < min_votes and task_id not in final:
                counts.below_min_votes += 1
                continue
            if task.responses[i] == task.responses[j]:
                counts.identical += 1
                continue
            prob_i = sum(1.0 if r[i] < r[j] else 0.5 if r[i] == r[j] else 0.0 for r in decided) / len(decided)
            if prob_i == 0.5:
                counts.no_majority += 1
                continue
            chosen, rejected, prob = (i, j, prob_i) if prob_i > 0.5 else (j, i, 1 - prob_i)
            rec = {
                "prompt": task.prompt,
                "chosen": task.responses[chosen],
                "rejected": task.responses[rejected],
                "prob": round(prob, 6),
                "votes": n,
            }
            if task_id in final:
                rec["adjudicated"] = True
            if weight == "agreement":
                rec["weight"] = round(2 * prob - 1, 6)
            out.append(rec)
            counts.pairs += 1
            counts.by_votes[n] += 1
    record_export(db, project.id, "pairs")
    return out, counts


def write_jsonl(records: list[dict[str, Any]], path: str | Path | None) -> None:
    """Write records as JSONL to ``path`` (atomically: temp file, then rename), or stdout if None."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if path is None or str(path) == "-":
        import sys

        sys.stdout.write(text)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def iter_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    for r in records:
        yield json.dumps(r, ensure_ascii=False) + "\n"
