"""The HTTP API and pages: auth, CSRF, size limits, error messages, escaping, admin flows."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from rlhf.feedback.auth import create_rater
from rlhf.feedback.io import import_records

from .conftest import ADMIN_TOKEN, XSS_IMG, XSS_SCRIPT, rater_client

HTML = {"accept": "text/html"}


def test_signed_out_pages_redirect_and_api_says_401(app, project):
    c = TestClient(app)
    r = c.get("/p/p", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = c.post("/api/p/p/next")
    assert r.status_code == 401 and "not signed in" in r.json()["error"]


def test_bad_token_and_cross_site_login_are_refused(app, db):
    c = TestClient(app)
    r = c.post("/login", data={"token": "nope"}, headers=HTML)
    assert r.status_code == 401 and "not valid" in r.text
    token = create_rater(db, "a")
    r = c.post(
        "/login", data={"token": token}, headers={"origin": "https://evil.example"}, follow_redirects=False
    )
    assert r.status_code == 403 and "cross-site" in r.json()["error"]


def test_session_cookie_is_httponly_and_headers_are_strict(app, db, project):
    c = rater_client(app, db, "a")
    r = c.post("/login", data={"token": create_rater(db, "a2")}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = c.get("/p/p", headers=HTML)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def test_rater_ranks_through_the_api_with_csrf_and_idempotency(app, db, project):
    c = rater_client(app, db, "a")
    task = c.post("/api/p/p/next").json()["task"]
    assert len(task["responses"]) == 4
    body = {"submission_id": "api-000001", "task_id": task["task_id"], "ranks": [1, 2, 2, 3]}
    no_csrf = c.post("/api/p/p/submit", json=body, headers={"x-csrf-token": ""})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    first = c.post("/api/p/p/submit", json=body)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    again = c.post("/api/p/p/submit", json=body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["label_id"] == first.json()["label_id"]
    assert c.get("/api/p/p/progress").json() == {"ranked": 1, "skipped": 0, "available": 5}
    skip = c.post(
        "/api/p/p/submit",
        json={
            "submission_id": "api-000002",
            "action": "skip",
            "task_id": c.post("/api/p/p/next").json()["task"]["task_id"],
            "skip_reason": "I cannot judge this topic",
        },
    )
    assert skip.status_code == 200 and skip.json()["action"] == "skip"


def test_raters_see_only_their_own_work(app, db, project, admin):
    a, b = rater_client(app, db, "a"), rater_client(app, db, "b")
    first = a.post("/api/p/p/next").json()["task"]["task_id"]
    assert b.post("/api/p/p/next").json()["task"]["task_id"] == first  # overlap 2: both get task 1
    a.post("/api/p/p/submit", json={"submission_id": "a-00000001", "task_id": first, "ranks": [1, 2, 3, 4]})
    second = a.post("/api/p/p/next").json()["task"]["task_id"]
    r = b.post(
        "/api/p/p/submit", json={"submission_id": "steal-0001", "task_id": second, "ranks": [1, 2, 3, 4]}
    )
    assert r.status_code == 404 and f"task {second} is not assigned to you" in r.json()["error"]
    # a's answer is a's alone: b's export rights, stats and progress views do not exist
    assert b.get("/api/p/p/progress").json()["ranked"] == 0
    for path in ("/api/admin/projects", "/api/admin/projects/p/stats", "/api/admin/projects/p/export"):
        assert b.get(path).status_code == 403
    assert b.get("/admin", headers=HTML).status_code == 403
    assert admin.post("/api/p/p/next").status_code == 403  # the admin is not a rater


def test_request_errors_are_clear(app, db, project):
    c = rater_client(app, db, "a")
    r = c.post("/api/p/p/submit", content=b'{"submission_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("request body is not valid JSON")
    r = c.post("/api/p/p/submit", json={"submission_id": "x" * 10, "task_id": "seven", "ranks": [1, 2]})
    assert r.status_code == 422 and "task_id" in r.json()["error"]
    for ranks in (["1", "2", "3", "4"], [True, 2, 3, 4], [1.0, 2, 3, 4]):  # refused, not coerced
        r = c.post("/api/p/p/submit", json={"submission_id": "x" * 10, "task_id": 1, "ranks": ranks})
        assert r.status_code == 422 and "ranks.0" in r.json()["error"], r.json()
    r = c.post("/api/p/p/submit", json={"submission_id": "x" * 10, "task_id": 1, "ranks": [1, 2], "evil": 1})
    assert r.status_code == 422 and "evil" in r.json()["error"]
    r = c.post("/api/p/nope/next")
    assert r.status_code == 403 and r.json()["error"].startswith(
        "you are not a member of a project named 'nope'"
    )
    r = c.get("/p/nope", headers=HTML)
    assert r.status_code == 403 and "not a member" in r.text and "<h1>Error 403</h1>" in r.text
    r = c.get("/no/such/page", headers=HTML)
    assert r.status_code == 404 and "no such page: /no/such/page" in r.text
    assert c.delete("/api/p/p/submit").json()["error"] == "DELETE is not allowed on /api/p/p/submit"


def test_oversize_bodies_are_refused_with_or_without_a_length(app, db, project, admin):
    c = rater_client(app, db, "a")
    big = b'{"pad": "' + b"x" * (2 << 20) + b'"}'
    r = c.post("/api/p/p/submit", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit is 1048576 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(40):
            yield b"x" * 65536

    r = c.post("/api/p/p/submit", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    # an import may be larger than a ranking
    lines = "".join(
        json.dumps({"prompt": "p" * 1000, "responses": [f"r{i}" * 400, "b"]}) + "\n" for i in range(1500)
    )
    assert len(lines) > 2 << 20
    r = admin.post("/api/admin/projects/p/import", content=lines.encode())
    assert r.status_code == 200 and r.json()["added"] == 1500


def test_payloads_in_model_output_are_escaped_in_the_html(app, db):
    from rlhf.feedback.projects import create_project

    create_project(
        db, "x", overlap=1, gold_fraction=0.0, guidelines=f"Hi {XSS_SCRIPT} [a](javascript:alert(1))"
    )
    import_records(
        db,
        "x",
        [
            (
                "t:1",
                {
                    "prompt": [{"role": "user", "content": XSS_IMG}],
                    "responses": [XSS_SCRIPT, XSS_IMG, "</div></li></ol><b>bold</b>"],
                },
            )
        ],
    )
    c = rater_client(app, db, "a")
    c.post("/api/p/x/next")
    html = c.get("/p/x", headers=HTML).text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert "<script>window" not in html and "<img" not in html and "<b>bold</b>" not in html
    assert len(re.findall(r"<script", html)) == 1  # only our own /static/label.js
    guide = c.get("/p/x/guidelines", headers=HTML).text
    assert "&lt;script&gt;" in guide and "<script>window" not in guide and 'href="javascript:' not in guide


def test_admin_api_projects_import_raters_stats_export(app, db, admin):
    assert (
        TestClient(app).get("/api/admin/projects", headers={"authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        admin.post("/api/admin/projects", json={"name": "q", "overlap": 1, "gold_fraction": 0}).status_code
        == 201
    )
    r = admin.post("/api/admin/projects", json={"name": "q"})
    assert r.status_code == 400 and "already exists" in r.json()["error"]
    bad = admin.post(
        "/api/admin/projects/q/import", content=b'{"prompt": "a", "responses": ["x", "y"]}\n{"prompt": 1}\n'
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("request body:2: field 'prompt'")
    good = admin.post("/api/admin/projects/q/import", content=b'{"prompt": "a", "responses": ["x", "y"]}\n')
    assert good.json() == {"added": 1, "gold": 0, "already_present": 0}

    made = admin.post("/api/admin/raters", json={"name": "ann"}).json()
    assert made["invite_url"] == "http://testserver/login#" + made["token"]
    assert "token" not in json.dumps(admin.get("/api/admin/raters").json())  # shown once, never listed
    r = admin.post("/api/admin/projects/q/members", json={"add": ["ann"]})
    assert r.json() == {"added": ["ann"], "removed": [], "members": ["ann"]}
    r = admin.post("/api/admin/raters", json={"name": "bo", "projects": ["q"]})
    assert r.status_code == 201 and admin.get("/api/admin/projects/q/members").json()["members"] == [
        "ann",
        "bo",
    ]
    r = admin.post("/api/admin/raters", json={"name": "cy", "projects": ["nope"]})
    assert r.status_code == 404 and "cy" not in json.dumps(admin.get("/api/admin/raters").json())
    c = TestClient(app)
    c.post("/login", data={"token": made["token"]}, follow_redirects=False)
    c.headers["x-csrf-token"] = c.get("/api/me").json()["csrf_token"]
    task = c.post("/api/p/q/next").json()["task"]
    c.post(
        "/api/p/q/submit",
        json={
            "submission_id": "ann-000001",
            "task_id": task["task_id"],
            "ranks": [2, 1] if task["responses"][0] == "x" else [1, 2],
        },
    )
    lines = admin.get("/api/admin/projects/q/export?kind=rankings").text.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"prompt": "a", "responses": ["x", "y"], "ranks": [2, 1], "annotator": "ann"}
    ]
    pairs = [
        json.loads(x)
        for x in admin.get("/api/admin/projects/q/export?kind=pairs&weight=agreement").text.splitlines()
    ]
    assert pairs == [{"prompt": "a", "chosen": "y", "rejected": "x", "prob": 1.0, "votes": 1, "weight": 1.0}]
    assert admin.get("/api/admin/projects/q/stats").json()["progress"]["rankings"] == 1

    assert admin.post("/api/admin/raters/ann/disable").json() == {"rater": "ann", "active": False}
    assert c.get("/api/p/q/progress").status_code == 401  # the disabled rater's session is gone
    assert admin.post("/api/admin/raters/nobody/disable").status_code == 404


def test_admin_pages_with_csrf_forms(app, project):
    c = TestClient(app)
    r = c.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert r.headers["location"] == "/admin"
    home = c.get("/admin", headers=HTML).text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)
    r = c.post("/admin/projects", data={"name": "new", "overlap": "2"}, headers=HTML)
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post(
        "/admin/projects", data={"name": "new", "overlap": "2", "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/p/new"
    upload = {
        "file": (
            "c.jsonl",
            b'{"prompt": "a", "responses": ["x", "y"], "ranks": [1, 2]}\n',
            "application/x-ndjson",
        )
    }
    r = c.post("/admin/p/new/import", files=upload, data={"csrf_token": csrf}, headers=HTML)
    assert r.status_code == 200 and "Imported 1 tasks (1 gold)" in r.text
    r = c.post("/admin/raters", data={"name": "zed", "csrf_token": csrf}, headers=HTML)
    assert (
        r.status_code == 201
        and "http://testserver/login#" in r.text
        and "shown <strong>only now</strong>" in r.text
    )
    page = c.get("/admin/p/p", headers=HTML)
    assert page.status_code == 200 and "Krippendorff" in page.text
    assert 'name="member" value="zed">' in page.text  # not a member yet: unchecked
    r = c.post("/admin/p/p/members", data={"member": ["zed"], "csrf_token": csrf}, headers=HTML)
    assert "Members: 1 added, 0 removed." in r.text and 'name="member" value="zed" checked>' in r.text
    assert c.get("/admin/p/p/export/rankings.jsonl").headers["content-disposition"].startswith("attachment")
    r = c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and c.get("/admin", headers=HTML, follow_redirects=False).status_code == 303


def test_asking_for_a_task_is_a_post_and_no_get_assigns_one(app, db, project):
    from sqlalchemy import func, select

    from rlhf.feedback.db import Assignment

    def assignments() -> int:
        with db.read() as s:
            return s.scalar(select(func.count()).select_from(Assignment))

    c = rater_client(app, db, "a")
    assert c.get("/api/p/p/next").status_code == 405
    page = c.get("/p/p", headers=HTML)  # no task held: a button to ask for one, nothing assigned
    assert page.status_code == 200 and 'action="/p/p/next"' in page.text and assignments() == 0
    assert c.get("/api/p/p/current").json() == {"task": None}
    assert c.post("/api/p/p/next", headers={"x-csrf-token": "wrong"}).status_code == 403
    csrf = c.headers["x-csrf-token"]
    r = c.post("/p/p/next", data={"csrf_token": csrf}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/p/p" and assignments() == 1
    held = c.get("/api/p/p/current").json()["task"]["task_id"]
    assert 'id="ranking"' in c.get("/p/p", headers=HTML).text
    assert c.post("/api/p/p/next").json()["task"]["task_id"] == held and assignments() == 1


def test_raters_work_only_on_their_projects_and_learn_nothing_of_others(app, db, project, admin):
    from rlhf.feedback.projects import create_project

    create_project(db, "secret-launch", overlap=1, gold_fraction=0.0, guidelines="internal")
    import_records(db, "secret-launch", [("t:1", {"prompt": "q", "responses": ["a", "b"]})])
    a = rater_client(app, db, "a", projects=["p"])
    answers = {}
    for name in ("secret-launch", "no-such-project"):  # existing or not: the same answer
        for method, path in (
            ("post", f"/api/p/{name}/next"),
            ("get", f"/api/p/{name}/current"),
            ("get", f"/api/p/{name}/progress"),
            ("get", f"/p/{name}/guidelines"),
            ("get", f"/p/{name}"),
        ):
            r = getattr(a, method)(path)
            assert r.status_code == 403, (path, r.status_code)
            answers.setdefault(name, []).append(r.json()["error"].replace(name, "NAME"))
        r = a.post(f"/api/p/{name}/submit", json={"submission_id": "x" * 10, "task_id": 7, "ranks": [1, 2]})
        assert r.status_code == 403
    assert answers["secret-launch"] == answers["no-such-project"]
    assert "secret-launch" not in a.get("/", headers=HTML).text  # the home page lists only p
    assert "secret-launch" not in a.post("/api/p/nope/next").text  # no list of known projects
    # the admin adds a to the project: now it works; removing gives the open task back
    r = admin.post("/api/admin/projects/secret-launch/members", json={"add": ["a"]})
    assert r.json()["members"] == ["a"]
    task = a.post("/api/p/secret-launch/next").json()["task"]
    assert "secret-launch" in a.get("/", headers=HTML).text
    b = rater_client(app, db, "b", projects=["secret-launch"])
    assert b.post("/api/p/secret-launch/next").json()["task"] is None  # a holds the only slot
    r = admin.post("/api/admin/projects/secret-launch/members", json={"remove": ["a"]})
    assert r.json() == {"added": [], "removed": ["a"], "members": ["b"]}
    assert a.post("/api/p/secret-launch/next").status_code == 403
    assert b.post("/api/p/secret-launch/next").json()["task"]["task_id"] == task["task_id"]
    assert admin.get("/api/admin/projects/secret-launch/members").json()["members"] == ["b"]
    r = admin.post("/api/admin/projects/secret-launch/members", json={"add": ["ghost"]})
    assert r.status_code == 404 and "no rater named 'ghost'" in r.json()["error"]
