"""`rlhf label ...` sub-verbs: projects, import, raters, export, stats, admin-token; errors exit 2
with one line naming the problem; the labeling code never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

from rlhf.feedback.auth import is_admin_token
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
