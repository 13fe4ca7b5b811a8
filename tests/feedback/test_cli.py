"""`rlhf label ...` sub-verbs: projects, import, raters, export, stats, admin-token; errors exit 2
with one line naming the problem; the labeling code never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

from rlhf.feedback.auth import is_admin_token, set_admin_token
from rlhf.feedback.cli import main
from rlhf.feedback.db import Database


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_project_from_the_command_line(tmp_path, capsys):
    db = str(tmp_path / "l.db")
    guide = tmp_path / "g.md"
    guide.write_text("# Guidelines\nPrefer the correct answer.")
    cands = tmp_path / "c.jsonl"
    cands.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "responses": ["a", "b", "c"]}) + "\n" for i in range(3))
    )

    assert (
        _run(
            capsys,
            "projects",
            "create",
            "p",
            "--db",
            db,
            "--overlap",
            "1",
            "--gold-fraction",
            "0",
            "--guidelines",
            str(guide),
        )[0]
        == 0
    )
    code, _, err = _run(capsys, "import", "--db", db, "--project", "p", str(cands))
    assert code == 0 and "3 tasks added (0 gold), 0 already present" in err
    code, out, _ = _run(capsys, "raters", "create", "ann", "--db", db, "--base-url", "http://h:9/")
    name, link = out.split()
    assert name == "ann" and link.startswith("http://h:9/login#") and len(link.split("#")[1]) >= 40
    code, out, _ = _run(capsys, "projects", "list", "--db", db)
    assert out.startswith("p\ttasks=3 gold=0 complete=0")
    assert _run(capsys, "raters", "disable", "ann", "--db", db)[1] == "ann\tdisabled\n"
    assert _run(capsys, "raters", "list", "--db", db)[1] == "ann\tdisabled\n"

    out_file = tmp_path / "out" / "r.jsonl"
    code, _, err = _run(capsys, "export", "--db", db, "--project", "p", "--out", str(out_file))
    assert code == 0 and "0 rankings from 0 raters" in err and out_file.read_text() == ""
    code, out, _ = _run(capsys, "stats", "--db", db, "--project", "p")
    assert code == 0 and out.startswith("p: 0/3 tasks complete")

    code, out, _ = _run(capsys, "admin-token", "--db", db)
    assert code == 0 and is_admin_token(Database(db), out.strip())


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    db = str(tmp_path / "l.db")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "responses": ["a", "b"]}\n{"prompt": "x", "responses": "ab"}\n')
    cases = [
        (("export", "--db", db, "--project", "p"), f"database file {tmp_path / 'l.db'} does not exist"),
        (("import", "--db", db, "--project", "nope", str(bad)), "no project named 'nope'"),
        (("projects", "create", "has space", "--db", db), "project name 'has space' must be"),
        (
            ("projects", "create", "p", "--db", db, "--overlap", "0"),
            "overlap must be an integer from 1 to 100",
        ),
        (("raters", "disable", "ghost", "--db", db), "no rater named 'ghost'"),
        (("raters", "create", "--db", db), "needs at least one rater name"),
        (("projects", "create", "p", "--db", db, "--guidelines", str(tmp_path / "none.md")), "cannot read"),
        (("export", "--db", "mysql://u@h/x", "--project", "p"), "no driver for"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    main(["projects", "create", "p", "--db", db])
    capsys.readouterr()
    code, _, err = _run(capsys, "import", "--db", db, "--project", "p", str(bad))
    assert code == 2 and f"{bad}:2: field 'responses' must be a list" in err


def test_the_labeling_code_does_not_import_torch():
    code = (
        "import sys\n"
        "from rlhf.feedback import app, cli, agreement, stats, io, loadtest\n"
        "app.create_app\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_errors_name_the_file_line_and_column_like_the_api(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from rlhf.feedback.app import create_app

    db = str(tmp_path / "l.db")
    main(["projects", "create", "p", "--db", db])
    token = "cli-admin-token-0123456789"
    set_admin_token(Database(db), token)
    api = TestClient(create_app(db), headers={"authorization": f"Bearer {token}"})
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(
        '{"prompt": "ok", "responses": ["a", "b"]}\n{"prompt": "café", "responses": ["a", "b"]}\n'.encode(
            "latin-1"
        )
    )
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "responses": ["x" "y"]}\n')
    capsys.readouterr()
    for path, message in (
        (latin1, ":2: not UTF-8 text (byte 0xe9 at column 16); save the file as UTF-8"),
        (bom, ":1: not valid JSON (Expecting ',' delimiter at column 35)"),
    ):
        code, _, err = _run(capsys, "import", "--db", db, "--project", "p", str(path))
        assert code == 2 and f"{path}{message}" in err and err.count("\n") == 1, err
        r = api.post("/api/admin/projects/p/import", content=path.read_bytes())
        assert r.status_code == 400 and r.json()["error"] == f"request body{message}"


def test_several_files_import_all_or_nothing(tmp_path, capsys):
    db = str(tmp_path / "l.db")
    main(["projects", "create", "p", "--db", db])
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps({"prompt": "q", "responses": ["a", "b"]}) + "\n")
    bad.write_text(json.dumps({"prompt": "q2", "responses": ["a", "b"], "rank": [1, 2]}) + "\n")
    code, _, err = _run(capsys, "import", "--db", db, "--project", "p", str(good), str(bad))
    assert code == 2 and f"{bad}:1: unknown field 'rank' (did you mean 'ranks'?)" in err
    code, out, _ = _run(capsys, "projects", "list", "--db", db)
    assert out.startswith("p\ttasks=0 ")  # the good first file was not imported either
    code, _, err = _run(capsys, "import", "--db", db, "--project", "p", str(good), str(good))
    assert code == 0 and "1 tasks added (0 gold), 1 already present" in err


def test_serve_prints_the_database_url_without_its_password(pg_cluster, capsys, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw["port"]))
    url = pg_cluster.url(password="s3cret-Pw")  # trust authentication: the password is not checked
    assert main(["serve", "--db", url, "--admin-token", "x" * 20, "--port", "8123"]) == 0 and served == [8123]
    err = capsys.readouterr().err
    assert (
        "s3cret-Pw" not in err
        and f"serving postgresql+psycopg://postgres:***@127.0.0.1:{pg_cluster.port}/" in err
    )
    code, _, err = _run(
        capsys, "stats", "--db", "postgresql+psycopg://u:s3cret-Pw@/x?port=bad", "--project", "p"
    )
    assert code == 2 and "s3cret-Pw" not in err


def test_members_from_the_command_line_and_an_older_database_keeps_its_raters(tmp_path, capsys):
    from sqlalchemy import text

    from rlhf.feedback import assign
    from rlhf.feedback.io import import_records
    from rlhf.feedback.members import list_members

    db = str(tmp_path / "l.db")
    main(["projects", "create", "p", "--db", db, "--gold-fraction", "0"])
    main(["projects", "create", "q", "--db", db])
    code, out, err = _run(capsys, "raters", "create", "ann", "bob", "--project", "p", "--db", db)
    assert code == 0 and "ann, bob added to project p" in err
    code, _, err = _run(capsys, "members", "add", "ann", "ann", "--project", "q", "--db", db)
    assert code == 0 and "1 raters added to q" in err
    assert _run(capsys, "members", "list", "--project", "p", "--db", db)[1] == "ann\nbob\n"
    code, _, err = _run(capsys, "members", "remove", "bob", "--project", "p", "--db", db)
    assert code == 0 and "1 raters removed from p" in err
    code, _, err = _run(capsys, "members", "add", "ghost", "--project", "p", "--db", db)
    assert code == 2 and "no rater named 'ghost'" in err

    # a database made before memberships existed: whoever had work in a project stays its member
    database = Database(db)
    import_records(database, "p", [("t:1", {"prompt": "x", "responses": ["a", "b"]})])
    assign.next_task(database, 1, 2)  # bob (id 2) had a task in p
    with database.write() as s:
        s.execute(text("DROP TABLE memberships"))
    database.dispose()
    assert list_members(Database(db), "p") == ["bob"]
