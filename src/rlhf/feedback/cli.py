"""`rlhf label ...`: serve the labeling app, import candidates, export labels, manage raters and projects.

    rlhf label projects create NAME [--overlap 3] [--guidelines FILE.md]
    rlhf label import --project NAME candidates.jsonl
    rlhf label raters create alice bob --project NAME   # prints each invite link once
    rlhf label members add|remove|list [RATER...] --project NAME
    rlhf label serve [--host 127.0.0.1] [--port 8000]
    rlhf label stats --project NAME
    rlhf label export --project NAME --kind rankings --out rankings.jsonl

Every sub-verb takes ``--db`` (a SQLite file path or a database URL; default ``$RLHF_LABEL_DB`` or
``label.db``). The commands other than ``serve`` work on the database directly: whoever can
open the database is an admin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rlhf.data.readers import DataError

# Only the standard library is imported up front: `rlhf --help` builds this parser, and must work
# where the server's dependencies (SQLAlchemy, FastAPI) are not installed.

SETTING_FLAGS = {
    "overlap": (int, "distinct raters per task"),
    "gold_fraction": (float, "chance that a rater's next task is a gold task"),
    "lease_minutes": (float, "minutes before an unanswered task goes back to the pool"),
    "min_agreement": (float, "flag raters whose agreement with the others' majority is below this"),
    "min_gold_accuracy": (float, "flag raters whose gold-task accuracy is below this"),
}


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=os.environ.get("RLHF_LABEL_DB", "label.db"),
        help="SQLite file or database URL, e.g. postgresql+psycopg://u:p@host/db (default: %(default)s)",
    )


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--guidelines", metavar="FILE.md", help="markdown file of rating guidelines")
    for name, (kind, doc) in SETTING_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=doc)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `label` verb and its sub-verbs to an `rlhf` sub-parser set."""
    label = subparsers.add_parser(
        "label",
        help="the human ranking server: serve, import, export, raters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = label.add_subparsers(dest="label_verb", metavar="SUBVERB")
    sub.required = True

    p = sub.add_parser("serve", help="run the labeling web app")
    _db_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--admin-token",
        default=None,
        help="admin token to set (default $RLHF_LABEL_ADMIN_TOKEN; else one is made and printed once)",
    )
    p.add_argument("--public-url", default=None, help="the URL raters use, for invite links (behind a proxy)")
    p.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (serve over https)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    p = sub.add_parser("import", help="add candidate sets (prompt + K responses, optional gold ranks)")
    _db_arg(p)
    p.add_argument("--project", required=True)
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="JSONL (or parquet / datasets dir) of candidate sets"
    )

    p = sub.add_parser("export", help="rankings per rater, or pairs aggregated with vote fractions")
    _db_arg(p)
    p.add_argument("--project", required=True)
    p.add_argument("--kind", choices=["rankings", "pairs"], default="rankings")
    p.add_argument("--out", default="-", help="output JSONL file (default: stdout)")
    p.add_argument(
        "--weight",
        choices=["none", "agreement"],
        default="none",
        help="pairs: add weight = 2*prob - 1 (how decided the raters were)",
    )
    p.add_argument(
        "--min-votes", type=int, default=1, help="pairs: only tasks with at least this many rankings"
    )
    p.add_argument(
        "--with-metadata",
        action="store_true",
        help="rankings: add task id, gold, scores, flags, display order, seconds",
    )
    p.add_argument("--no-gold", action="store_true", help="leave out the answers to gold tasks")

    p = sub.add_parser("raters", help="create, list, disable, enable raters; new invite tokens")
    _db_arg(p)
    p.add_argument("action", choices=["create", "list", "disable", "enable", "token"])
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/", help="server URL for the invite links")
    p.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="P",
        help="create: also make them members of project P (repeatable)",
    )

    p = sub.add_parser("members", help="which raters work on a project: add, remove, list")
    _db_arg(p)
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("--project", required=True)
    p.add_argument("names", nargs="*", metavar="RATER")

    p = sub.add_parser("projects", help="create, list or update projects")
    _db_arg(p)
    p.add_argument("action", choices=["create", "list", "update"])
    p.add_argument("name", nargs="?")
    _settings_args(p)

    p = sub.add_parser("stats", help="progress, throughput and agreement of a project")
    _db_arg(p)
    p.add_argument("--project", required=True)
    p.add_argument("--json", action="store_true", help="print the full statistics as JSON")

    p = sub.add_parser("admin-token", help="replace the admin token; prints the new one once")
    _db_arg(p)
    return label


def _settings(args: argparse.Namespace) -> dict:
    out = {k: getattr(args, k) for k in SETTING_FLAGS if getattr(args, k) is not None}
    if args.guidelines:
        try:
            with open(args.guidelines, encoding="utf-8") as fh:
                out["guidelines"] = fh.read()
        except OSError as err:
            raise DataError(f"--guidelines: cannot read {args.guidelines} ({err.strerror})") from None
    return out


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rlhf.feedback.app import create_app
    from rlhf.feedback.auth import ensure_admin_token
    from rlhf.feedback.db import Database, redact_url

    db = Database(args.db)
    made = ensure_admin_token(db, args.admin_token or os.environ.get("RLHF_LABEL_ADMIN_TOKEN"))
    app = create_app(db, secure_cookies=args.secure_cookies, public_url=args.public_url)
    print(f"rlhf label: serving {redact_url(db.url)} at http://{args.host}:{args.port}/", file=sys.stderr)
    if made:
        print(f"rlhf label: admin token (shown only now; stored hashed): {made}", file=sys.stderr)
    sys.stderr.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0


def _raters(db, args: argparse.Namespace) -> int:
    from rlhf.feedback.auth import AuthError, create_rater, list_raters, new_rater_token, set_rater_active

    if args.action == "list":
        for r in list_raters(db):
            print(f"{r['name']}\t{'active' if r['active'] else 'disabled'}")
        return 0
    if not args.names:
        raise AuthError(f"`raters {args.action}` needs at least one rater name")
    base = args.base_url.rstrip("/") + "/"
    for name in args.names:
        if args.action in ("create", "token"):
            token = (create_rater if args.action == "create" else new_rater_token)(db, name)
            print(f"{name}\t{base}login#{token}")
        else:
            set_rater_active(db, name, args.action == "enable")
            print(f"{name}\t{args.action}d")
    if args.action in ("create", "token"):
        print(
            "rlhf label: invite links are shown only now; the database keeps only their hashes",
            file=sys.stderr,
        )
    if args.action == "create":
        from rlhf.feedback.members import add_members

        for project in args.project:
            add_members(db, project, args.names)
            print(f"rlhf label: {', '.join(args.names)} added to project {project}", file=sys.stderr)
    return 0


def _members(db, args: argparse.Namespace) -> int:
    from rlhf.feedback.auth import AuthError
    from rlhf.feedback.members import add_members, list_members, remove_members

    if args.action == "list":
        for name in list_members(db, args.project):
            print(name)
        return 0
    if not args.names:
        raise AuthError(f"`members {args.action}` needs at least one rater name")
    changed = (add_members if args.action == "add" else remove_members)(db, args.project, args.names)
    unchanged = [n for n in args.names if n not in changed]
    note = f" ({', '.join(unchanged)}: no change)" if unchanged else ""
    word = "added to" if args.action == "add" else "removed from"
    print(f"{len(changed)} raters {word} {args.project}{note}", file=sys.stderr)
    return 0


def _projects(db, args: argparse.Namespace) -> int:
    from rlhf.feedback.projects import ProjectError, create_project, list_projects, update_project

    if args.action == "list":
        for p in list_projects(db):
            print(
                f"{p['name']}\ttasks={p['tasks']} gold={p['gold_tasks']} complete={p['complete_tasks']} "
                f"rankings={p['rankings']} skips={p['skips']} overlap={p['overlap']}"
            )
        return 0
    if not args.name:
        raise ProjectError(f"`projects {args.action}` needs a project name")
    (create_project if args.action == "create" else update_project)(db, args.name, **_settings(args))
    print(f"project {args.name} {args.action}d", file=sys.stderr)
    return 0


def _stats(db, args: argparse.Namespace) -> int:
    from rlhf.feedback.stats import project_stats

    stats = project_stats(db, args.project)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    g, a = stats["progress"], stats["agreement"]
    print(
        f"{args.project}: {g['complete_tasks']}/{g['tasks']} tasks complete, {g['gold_tasks']} gold, "
        f"{g['rankings']} rankings, {g['skips']} skips, {g['open_assignments']} open"
    )
    for key, label in (
        ("pairwise", "raw pairwise agreement"),
        ("krippendorff_alpha", "Krippendorff's alpha"),
        ("kendall_tau_b", "mean Kendall tau-b"),
    ):
        value = a[key]["value"]
        print(f"  {label:24s} {'-' if value is None else f'{value:.3f}':>7s}  (n={a[key]['n']})")
    print(
        f"  {'rater':16s} {'ranked':>6s} {'skip':>5s} {'s/task':>7s}  {'majority agreement':24s} "
        f"{'gold accuracy':24s} flag"
    )
    for r in stats["raters"]:
        med = r["median_seconds"]
        print(
            f"  {r['rater']:16s} {r['ranked']:6d} {r['skipped']:5d} "
            f"{'-' if med is None else f'{med:.1f}':>7s}  "
            f"{_with_interval(r['majority_agreement']):24s} {_with_interval(r['gold_accuracy']):24s} "
            f"{'; '.join(r['flagged'])}"
        )
    return 0


def _with_interval(score: dict) -> str:
    """0.83 [0.71-0.91] n=36: the value, its 95% interval and the comparisons behind it."""
    if score["value"] is None:
        return f"- n={score['n']}"
    lo, hi = score["interval"]
    return f"{score['value']:.2f} [{lo:.2f}-{hi:.2f}] n={score['n']}"


def _run(args: argparse.Namespace) -> int:
    if args.label_verb == "serve":
        return _serve(args)
    from rlhf.feedback import io
    from rlhf.feedback.db import Database

    verb = args.label_verb
    db = Database(args.db, create=verb in ("import", "projects", "raters", "members", "admin-token"))
    if verb == "import":
        r = io.import_files(db, args.project, args.files)  # all files or none
        print(
            f"{', '.join(args.files)}: {r.added} tasks added ({r.gold} gold), {r.already_present} already "
            "present",
            file=sys.stderr,
        )
    elif verb == "export":
        if args.kind == "rankings":
            records = io.export_rankings(db, args.project, args.with_metadata, include_gold=not args.no_gold)
            summary = f"{len(records)} rankings from {len({r['annotator'] for r in records})} raters"
        else:
            records, c = io.export_pairs(
                db, args.project, args.min_votes, args.weight, include_gold=not args.no_gold
            )
            summary = (
                f"{c.pairs} pairs from {c.tasks} tasks ({c.no_majority} split evenly, {c.identical} "
                f"identical, {c.below_min_votes} below --min-votes left out)"
            )
        io.write_jsonl(records, args.out)
        print(f"rlhf label export: {summary} -> {args.out if args.out != '-' else 'stdout'}", file=sys.stderr)
    elif verb == "raters":
        return _raters(db, args)
    elif verb == "members":
        return _members(db, args)
    elif verb == "projects":
        return _projects(db, args)
    elif verb == "stats":
        return _stats(db, args)
    elif verb == "admin-token":
        from rlhf.feedback.auth import new_token, set_admin_token

        token = new_token()
        set_admin_token(db, token)
        print(token)
        print(
            "rlhf label: the new admin token is shown only now; admin sessions were signed out",
            file=sys.stderr,
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed `label` command; user errors print one line and return 2."""
    from rlhf.feedback.auth import AuthError
    from rlhf.feedback.db import DbError
    from rlhf.feedback.projects import ProjectError

    try:
        return _run(args)
    except (DataError, DbError, ProjectError, AuthError) as err:
        print(f"rlhf label {args.label_verb}: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """`python -m rlhf.feedback ...`: the same commands without loading the training stack."""
    parser = argparse.ArgumentParser(prog="rlhf")
    add_parser(parser.add_subparsers(dest="verb", required=True))
    return run(parser.parse_args(["label", *(sys.argv[1:] if argv is None else argv)]))
