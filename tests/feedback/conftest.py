"""Fixtures of the labeling tests: a fresh SQLite database, projects with candidate sets, and
HTTP clients signed in as a rater or as the admin."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rlhf.feedback.auth import create_rater, set_admin_token
from rlhf.feedback.db import Base, Database
from rlhf.feedback.io import import_records
from rlhf.feedback.projects import create_project

ADMIN_TOKEN = "test-admin-token-0123456789"
XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=1">'
PG_URL = os.environ.get("RLHF_TEST_POSTGRES_URL")
"""e.g. postgresql+psycopg://postgres@127.0.0.1:5432/labels: run the database-level tests on PostgreSQL"""


def candidates(
    n: int, k: int = 4, prefix: str = "q", gold_every: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """``n`` located candidate records with ``k`` responses; every ``gold_every``-th has a gold ranking."""
    out = []
    for i in range(n):
        rec: dict[str, Any] = {
            "id": f"{prefix}{i}",
            "prompt": f"Question {i}?",
            "responses": [f"answer {i}.{j}" for j in range(k)],
        }
        if gold_every and i % gold_every == 0:
            rec["ranks"] = list(range(1, k + 1))
        out.append((f"test:{i + 1}", rec))
    return out


@pytest.fixture
def db(tmp_path: Path) -> Database:
    """A fresh SQLite database, or the PostgreSQL database at $RLHF_TEST_POSTGRES_URL, emptied."""
    if PG_URL:
        database = Database(PG_URL)
        Base.metadata.drop_all(database.engine)
        Base.metadata.create_all(database.engine)
    else:
        database = Database(str(tmp_path / "label.db"))
    set_admin_token(database, ADMIN_TOKEN)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (initdb + pg_ctl in a temp dir, free port)."""
    from rlhf.feedback.pgcluster import TempPostgres, server_bin

    if server_bin("initdb") is None:
        pytest.skip("PostgreSQL is not installed (`make postgres` installs Debian's postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[server]')")
    with TempPostgres() as cluster:
        yield cluster


@pytest.fixture
def pg_db(pg_cluster) -> Database:
    """A fresh database on the session's throwaway PostgreSQL server."""
    database = Database(pg_cluster.url())
    set_admin_token(database, ADMIN_TOKEN)
    yield database
    database.dispose()


@pytest.fixture
def project(db: Database) -> str:
    """Project "p": 6 tasks of K = 4, overlap 2, no gold."""
    create_project(db, "p", overlap=2, gold_fraction=0.0, guidelines="# Rank well\nBe **fair**.")
    import_records(db, "p", candidates(6))
    return "p"


@pytest.fixture
def app(db: Database):
    from rlhf.feedback.app import create_app

    return create_app(db)


def rater_client(app, db: Database, name: str, projects: list[str] | None = None):
    """A TestClient signed in as a new rater ``name``, sending the session's CSRF token; a member
    of ``projects`` (default: every project there is now)."""
    from fastapi.testclient import TestClient

    from rlhf.feedback.members import add_members
    from rlhf.feedback.projects import list_projects

    client = TestClient(app)
    token = create_rater(db, name)
    for project in [p["name"] for p in list_projects(db)] if projects is None else projects:
        add_members(db, project, [name])
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    client.headers["x-csrf-token"] = client.get("/api/me").json()["csrf_token"]
    return client


@pytest.fixture
def admin(app):
    from fastapi.testclient import TestClient

    return TestClient(app, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
