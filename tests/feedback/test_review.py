"""Revising, correcting and adjudicating a submitted ranking: every version is kept, exports use
the latest, and a rater cannot revise a ranking once it is used (exported or reviewed)."""

from __future__ import annotations

import json

from .conftest import ADMIN_TOKEN, rater_client

HTML = {"accept": "text/html"}


def _export(admin, kind: str = "rankings") -> list[dict]:
    return [json.loads(x) for x in admin.get(f"/api/admin/projects/p/export?kind={kind}").text.splitlines()]


def _rank(c, ranks_by_text) -> dict:
    """Take the next task and rank it; ``ranks_by_text(response text) -> rank``."""
    task = c.post("/api/p/p/next").json()["task"]
    ranks = [ranks_by_text(t) for t in task["responses"]]
    sid = f"s-{task['task_id']}-{abs(hash(c)) % 10**6:06d}"
    assert (
        c.post(
            "/api/p/p/submit", json={"submission_id": sid, "task_id": task["task_id"], "ranks": ranks}
        ).status_code
        == 200
    )
    return task


def _by_answer(t: str) -> int:  # "answer i.j": j = 0 best
    return int(t.rsplit(".", 1)[1]) + 1


def test_a_rater_revises_until_used_and_every_version_is_kept(app, db, project, admin):
    a = rater_client(app, db, "a")
    task = _rank(a, _by_answer)
    tid = task["task_id"]
    shown = task["responses"]
    # revise: the worst first now (per-response lists in the order the page showed them)
    revised = [5 - _by_answer(t) for t in shown]
    r = a.post(f"/api/p/p/labels/{tid}", json={"ranks": revised})
    assert r.status_code == 200 and r.json() == {"task_id": tid, "version": 2}
    for bad, why in (([1, 2, 3, 99], "ranks[3] is 99"), ([1, 2, 3], "'ranks' has 3 entries")):
        r = a.post(f"/api/p/p/labels/{tid}", json={"ranks": bad})
        assert r.status_code == 422 and why in r.json()["error"]
    assert a.post("/api/p/p/labels/999", json={"ranks": [1, 2, 3, 4]}).status_code == 404
    r = a.post(f"/api/p/p/labels/{tid}", json={"ranks": revised, "scores": [7, None, None, None]})
    assert r.json()["version"] == 3
    page = a.get(f"/p/p/revise/{tid}", headers=HTML).text
    assert 'data-mode="revise"' in page and "Save revised ranking" in page
    assert '<option value="7" selected>' in page  # the page starts from the current version
    assert f'href="/p/p/revise/{tid}"' in a.get("/p/p/answers", headers=HTML).text

    (row,) = [x for x in _export(admin) if x["annotator"] == "a"]  # the export uses the latest version
    assert row["ranks"] == [4, 3, 2, 1]
    # exported since it was submitted: used, so no more revisions; the versions are all there
    r = a.post(f"/api/p/p/labels/{tid}", json={"ranks": [1, 2, 3, 4]})
    assert r.status_code == 409 and "exported since it was submitted" in r.json()["error"]
    assert "final: it was exported" in a.get("/p/p/answers", headers=HTML).text
    (label,) = admin.get(f"/api/admin/projects/p/tasks/{tid}").json()["labels"]
    assert [(v["version"], v["kind"], v["author"], v["ranks"]) for v in label["versions"]] == [
        (1, "submitted", "a", [1, 2, 3, 4]),
        (2, "revised", "a", [4, 3, 2, 1]),
        (3, "revised", "a", [4, 3, 2, 1]),
    ]


def test_the_admin_corrects_and_adjudicates_and_exports_follow(app, db, project, admin):
    a, b = rater_client(app, db, "a"), rater_client(app, db, "b")
    tid = _rank(a, _by_answer)["task_id"]
    assert _rank(b, lambda t: 5 - _by_answer(t))["task_id"] == tid  # b ranks it backwards
    label_b = next(
        x for x in admin.get(f"/api/admin/projects/p/tasks/{tid}").json()["labels"] if x["rater"] == "b"
    )
    r = admin.post(
        f"/api/admin/projects/p/labels/{label_b['label_id']}/correct",
        json={"ranks": [1, 2, 2, 3], "note": "misread"},
    )
    assert r.json() == {"label_id": label_b["label_id"], "version": 2}
    r = b.post(f"/api/p/p/labels/{tid}", json={"ranks": [1, 2, 3, 4]})  # reviewed: final for b
    assert r.status_code == 409 and "corrected" in r.json()["error"]
    assert {x["annotator"]: x["ranks"] for x in _export(admin)} == {"a": [1, 2, 3, 4], "b": [1, 2, 2, 3]}

    queue = admin.get("/api/admin/projects/p/review").json()
    assert queue[0]["task_id"] == tid and queue[0]["disputed"] > 0 and queue[0]["adjudicated"] is False
    r = admin.post(f"/api/admin/projects/p/tasks/{tid}/adjudicate", json={"ranks": [2, 1, 3, 3]})
    assert r.json() == {"task_id": tid, "version": 1}
    r = admin.post(f"/api/admin/projects/p/tasks/{tid}/adjudicate", json={"ranks": [2, 1, 3, 4]})
    assert r.json()["version"] == 2
    assert (
        admin.post(f"/api/admin/projects/p/tasks/{tid}/adjudicate", json={"ranks": [1, 1]}).status_code == 422
    )
    rankings = _export(admin)
    assert rankings[-1]["annotator"] == "adjudication" and rankings[-1]["ranks"] == [2, 1, 3, 4]
    pairs = _export(admin, "pairs")
    assert len(pairs) == 6 and all(p["adjudicated"] and p["prob"] == 1.0 and p["votes"] == 2 for p in pairs)
    assert {(p["chosen"], p["rejected"]) for p in pairs} >= {("answer 0.1", "answer 0.0")}
    review = admin.get(f"/api/admin/projects/p/tasks/{tid}").json()
    assert [x["ranks"] for x in review["adjudications"]] == [[2, 1, 3, 3], [2, 1, 3, 4]]  # nothing lost
    versions = next(x for x in review["labels"] if x["rater"] == "b")["versions"]
    assert [(v["kind"], v["author"], v["note"]) for v in versions] == [
        ("submitted", "b", None),
        ("corrected", "admin", "misread"),
    ]


def test_admin_review_pages(app, db, project):
    from fastapi.testclient import TestClient

    a = rater_client(app, db, "a")
    tid = _rank(a, _by_answer)["task_id"]
    c = TestClient(app)
    c.post("/login", data={"token": ADMIN_TOKEN})
    queue = c.get("/admin/p/p/review", headers=HTML).text
    assert f'href="/admin/p/p/t/{tid}"' in queue
    csrf = c.get("/api/me").json()["csrf_token"]
    r = c.post(f"/admin/p/p/t/{tid}/adjudicate", data={"ranks": "1, 1 2 3", "csrf_token": csrf}, headers=HTML)
    assert r.status_code == 200 and "Adjudicated (version 1)." in r.text and "v1: 1 1 2 3" in r.text
    r = c.post(f"/admin/p/p/t/{tid}/adjudicate", data={"ranks": "one", "csrf_token": csrf}, headers=HTML)
    assert r.status_code == 422 and "whole numbers" in r.text
