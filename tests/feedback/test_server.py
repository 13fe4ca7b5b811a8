"""A real server (uvicorn in a subprocess on loopback): killed with SIGKILL and restarted it keeps
every acknowledged ranking; under 50 concurrent raters every ranking is stored exactly once and
nobody is told "nothing left" while work remains, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text

from rlhf.feedback.auth import create_rater, set_admin_token
from rlhf.feedback.db import Database
from rlhf.feedback.io import import_records
from rlhf.feedback.loadtest import ServerProcess, run_load
from rlhf.feedback.members import add_members
from rlhf.feedback.projects import create_project

from .conftest import ADMIN_TOKEN, candidates

RATERS, PER_RATER = 50, 20
LOAD_BOUND_S = 90.0
"""the load test's wall-clock bound; it takes about 15-25 s on 2 busy cores"""


def _setup(path, tasks: int, overlap: int, raters: int) -> list[str]:
    db = Database(str(path))  # a SQLite file, or a database URL
    set_admin_token(db, ADMIN_TOKEN)
    create_project(db, "p", overlap=overlap, gold_fraction=0.0)
    import_records(db, "p", candidates(tasks))
    tokens = [create_rater(db, f"r{i:02d}") for i in range(raters)]
    add_members(db, "p", [f"r{i:02d}" for i in range(raters)])
    db.dispose()
    return tokens


def _counts(path) -> tuple[int, int, int, int]:
    """(rows, distinct submission ids, distinct (task, rater), most rankings on one task)."""
    db = Database(str(path), create=False)
    with db.read() as s:
        rows, ids, pairs = s.execute(
            text(
                "SELECT count(*), count(DISTINCT submission_id), count(DISTINCT task_id || '/' || rater_id) "
                "FROM labels"
            )
        ).one()
        most = s.execute(
            text("SELECT max(n) FROM (SELECT count(*) AS n FROM labels GROUP BY task_id) AS per_task")
        ).scalar()
    db.dispose()
    return rows, ids, pairs, most or 0


def test_a_killed_server_loses_nothing_it_acknowledged(tmp_path):
    path = tmp_path / "label.db"
    (token,) = _setup(path, tasks=10, overlap=1, raters=1)
    sent = []
    server = ServerProcess(path, ADMIN_TOKEN, tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            c.post("/login", data={"token": token})
            c.headers["x-csrf-token"] = c.get("/api/me").json()["csrf_token"]
            for _ in range(8):
                task = c.post("/api/p/p/next").json()["task"]
                body = {"submission_id": uuid.uuid4().hex, "task_id": task["task_id"], "ranks": [4, 3, 2, 1]}
                assert c.post("/api/p/p/submit", json=body).status_code == 200  # acknowledged
                sent.append(body)
            held = c.post("/api/p/p/next").json()["task"]["task_id"]  # an open assignment, too
            cookies = dict(c.cookies)
        server.kill()  # SIGKILL right after the last acknowledgement: no shutdown code runs
    finally:
        server.stop()
    assert server.proc.returncode == -9

    with ServerProcess(path, ADMIN_TOKEN, tmp_path / "server.log") as again:
        with httpx.Client(base_url=again.url, timeout=30, cookies=cookies) as c:
            # the session survived too; the held task is still this rater's
            c.headers["x-csrf-token"] = c.get("/api/me").json()["csrf_token"]
            assert c.post("/api/p/p/next").json()["task"]["task_id"] == held
            for body in sent:  # every retry after the restart is recognised, none stored again
                r = c.post("/api/p/p/submit", json=body)
                assert r.status_code == 200 and r.json()["duplicate"] is True
            export = httpx.get(
                f"{again.url}/api/admin/projects/p/export", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
            ).text.splitlines()
    assert len(export) == 8
    assert _counts(path)[:3] == (8, 8, 8)


@pytest.mark.load
@pytest.mark.parametrize("backend, per_rater", [("sqlite", PER_RATER), ("postgresql", PER_RATER // 2)])
def test_50_concurrent_raters_store_every_ranking_exactly_once(backend, per_rater, tmp_path, request):
    # PostgreSQL: the same 50 raters at once, with half the rankings each (the test's time budget);
    # tasks are scaled so that a sixth of the slots stay open to the end either way
    path = tmp_path / "label.db" if backend == "sqlite" else request.getfixturevalue("pg_cluster").url()
    total = RATERS * per_rater
    tasks = total * 2 // 5  # x overlap 3 = 1.2 slots per ranking
    tokens = _setup(path, tasks=tasks, overlap=3, raters=RATERS)
    with ServerProcess(path, ADMIN_TOKEN, tmp_path / "server.log") as server:
        result = run_load(server.url, "p", tokens, per_rater, dup_every=5, time_limit=LOAD_BOUND_S)
    print(
        f"\nload ({backend}): {tasks} tasks x overlap 3, {RATERS} raters: {result.acknowledged} rankings in "
        f"{result.seconds:.1f} s = {result.throughput:.1f}/s, submit p50 {result.percentile(50) * 1000:.0f} "
        f"ms, p95 {result.percentile(95) * 1000:.0f} ms; 'nothing left' {result.nothing_left} times"
    )
    assert result.errors == []
    assert result.nothing_left == 0  # slots stay open to the end: nobody may be told it is done
    assert result.acknowledged == total
    assert result.duplicates_sent == total // 5 == result.duplicate_acks
    rows, ids, pairs, most = _counts(path)
    assert (rows, ids, pairs) == (total, total, total)  # exactly once: no loss, no duplicate
    assert most <= 3  # and never over the overlap
    assert result.seconds < LOAD_BOUND_S
