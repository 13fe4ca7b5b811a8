"""The labeling server under load: concurrent raters submitting rankings to a real server.

One `rlhf label serve` (uvicorn, one process) runs on 127.0.0.1 in a subprocess, over SQLite (WAL
mode, synchronous=FULL) and then over a throwaway PostgreSQL server (fsync off: a test cluster),
the same load on each. Each simulated rater has its own HTTP client: it signs in with its
invite token, then `--per-rater` times asks for its next task and submits a ranking (every 5th one
is sent twice, as a client retry after a lost reply would be). There is no think time, so this is
the server's ceiling, not a model of people (who take tens of seconds per ranking). Afterwards the
database must hold every ranking exactly once, and no rater may have been told "nothing left"
(there are more tasks than the raters can fill).

Throughput = acknowledged rankings / wall seconds; latency = time from sending a submission to its
acknowledgement (p50/p95/p99). The client runs on the same cores as the server; `other_load` says
how many cores other processes of the machine kept busy meanwhile.

    .venv/bin/python bench/bench_label.py [--raters 50] [--per-rater 20] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import psutil
from common import busy_cpu_seconds, machine_info, table, write_results
from sqlalchemy import text

from rlhf.feedback.auth import create_rater, set_admin_token
from rlhf.feedback.db import Database
from rlhf.feedback.io import import_records
from rlhf.feedback.loadtest import ServerProcess, run_load
from rlhf.feedback.members import add_members
from rlhf.feedback.pgcluster import TempPostgres
from rlhf.feedback.projects import create_project

ADMIN = "bench-admin-token-0123456789"
K = 4
OVERLAP = 3


def setup(path: Path | str, raters: int, per_rater: int) -> list[str]:
    db = Database(str(path))
    set_admin_token(db, ADMIN)
    create_project(db, "bench", overlap=OVERLAP, gold_fraction=0.0)
    n_tasks = (raters * per_rater) // OVERLAP + raters  # slack, so nobody runs out of work
    records = [
        (
            f"bench:{i}",
            {
                "id": i,
                "prompt": f"Prompt {i}: " + "word " * 40,
                "responses": [f"response {j} " * 30 for j in range(K)],
            },
        )
        for i in range(n_tasks)
    ]
    import_records(db, "bench", records)
    tokens = [create_rater(db, f"r{i:03d}") for i in range(raters)]
    add_members(db, "bench", [f"r{i:03d}" for i in range(raters)])
    db.dispose()
    return tokens


def stored(path: Path | str) -> dict[str, int]:
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
    return {
        "stored": rows,
        "distinct_submissions": ids,
        "distinct_task_rater": pairs,
        "max_per_task": most or 0,
    }


def measure(raters: int, per_rater: int, database: str) -> dict:
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        if database == "sqlite":
            path = Path(d) / "label.db"
        else:  # a throwaway PostgreSQL server (Debian's postgresql package: `make postgres`)
            path = stack.enter_context(TempPostgres()).url()
        tokens = setup(path, raters, per_rater)
        with ServerProcess(path, ADMIN, Path(d) / "server.log") as server:
            proc = psutil.Process(server.proc.pid)
            server0, own0, busy0, wall0 = (
                sum(proc.cpu_times()[:2]),
                time.process_time(),
                busy_cpu_seconds(),
                time.perf_counter(),
            )
            result = run_load(server.url, "bench", tokens, per_rater, dup_every=5, time_limit=300)
            wall = time.perf_counter() - wall0
            server_cpu, client_cpu = sum(proc.cpu_times()[:2]) - server0, time.process_time() - own0
            other = max(0.0, busy_cpu_seconds() - busy0 - server_cpu - client_cpu) / wall
        counts = stored(path)
    if result.errors:
        raise SystemExit(f"load test errors: {result.errors[:5]}")
    return {
        "database": database,
        "raters": raters,
        "per_rater": per_rater,
        "acknowledged": result.acknowledged,
        "nothing_left": result.nothing_left,
        **counts,
        "duplicates_sent": result.duplicates_sent,
        "duplicate_acks": result.duplicate_acks,
        "seconds": round(result.seconds, 2),
        "rankings_per_s": round(result.throughput, 1),
        "submit_p50_ms": round(result.percentile(50) * 1000, 1),
        "submit_p95_ms": round(result.percentile(95) * 1000, 1),
        "submit_p99_ms": round(result.percentile(99) * 1000, 1),
        "next_p50_ms": round(result.percentile(50, "next") * 1000, 1),
        "next_p95_ms": round(result.percentile(95, "next") * 1000, 1),
        "server_cores": round(server_cpu / wall, 2),
        "client_cores": round(client_cpu / wall, 2),
        "other_load": round(other, 2),
        "server_cpu_ms_per_ranking": round(1000 * server_cpu / max(1, result.acknowledged), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=50)
    ap.add_argument("--per-rater", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="10 raters x 5 rankings: a smoke run")
    ap.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql (default both)"
    )
    args = ap.parse_args()
    raters, per_rater = (10, 5) if args.quick else (args.raters, args.per_rater)
    rows = []
    for database in args.databases.split(","):
        row = measure(raters, per_rater, database)
        exact = (
            row["stored"] == row["distinct_submissions"] == row["distinct_task_rater"] == raters * per_rater
        )
        row["exactly_once"] = exact and row["max_per_task"] <= OVERLAP
        rows.append(row)
    print(
        table(
            rows,
            [
                "database",
                "raters",
                "per_rater",
                "stored",
                "nothing_left",
                "seconds",
                "rankings_per_s",
                "submit_p50_ms",
                "submit_p95_ms",
                "submit_p99_ms",
                "next_p95_ms",
                "server_cores",
                "client_cores",
                "other_load",
                "exactly_once",
            ],
        )
    )
    print("server/client_cores: CPU the server and the simulated raters used; other_load: other processes")
    if not args.quick:
        path = write_results(
            "label", {"machine": machine_info(), "config": {"k": K, "overlap": OVERLAP}, "rows": rows}
        )
        print(f"wrote {path}")
    if not all(row["exactly_once"] for row in rows):
        raise SystemExit("rankings were lost or stored twice")
    if any(row["nothing_left"] for row in rows):
        raise SystemExit("a rater was told 'nothing left' while tasks had room")


if __name__ == "__main__":
    main()
