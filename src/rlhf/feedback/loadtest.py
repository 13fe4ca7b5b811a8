"""A real server in a subprocess, and simulated raters hammering it: used by the load,
durability and browser tests and by bench/bench_label.py.

Traffic goes to loopback only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m rlhf.feedback serve`` on 127.0.0.1 in a subprocess; a context manager.

    ``kill()`` sends SIGKILL (no shutdown hook runs: what survives is what was committed).
    """

    def __init__(self, db: str | Path, admin_token: str, log: str | Path, port: int | None = None):
        self.db, self.admin_token, self.log = str(db), admin_token, Path(log)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        import httpx

        cmd = [
            sys.executable,
            "-m",
            "rlhf.feedback",
            "serve",
            "--db",
            self.db,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "RLHF_LABEL_ADMIN_TOKEN": self.admin_token}
        self._log_fh = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log_fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log_fh", None):
            self._log_fh.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LoadResult:
    raters: int
    per_rater: int
    seconds: float
    acknowledged: int
    duplicates_sent: int
    duplicate_acks: int
    errors: list[str] = field(default_factory=list)
    nothing_left: int = 0
    """answers "nothing left" (task null) to a rater, each retried after a short pause"""
    nothing_left_then_task: int = 0
    """of those, retries that got a task: the project was not done for that rater"""
    submit_latency: list[float] = field(default_factory=list)
    """seconds per acknowledged first submission"""
    next_latency: list[float] = field(default_factory=list)

    def percentile(self, q: float, which: str = "submit") -> float:
        values = self.submit_latency if which == "submit" else self.next_latency
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def throughput(self) -> float:
        """acknowledged rankings per second, over the whole run"""
        return self.acknowledged / self.seconds if self.seconds else 0.0


async def _next(client, base: str, project: str, headers: dict) -> dict | None:
    for _ in range(5):
        r = await client.post(f"{base}/api/p/{project}/next", headers=headers)
        if r.status_code != 503:  # 503: every task with room was busy; try again
            break
        await asyncio.sleep(0.1)
    if r.status_code != 200:
        raise _Failed(f"next: {r.status_code} {r.text[:200]}")
    return r.json()["task"]


class _Failed(Exception):
    """A request a rater cannot go on after; its message goes into LoadResult.errors."""


async def _rater(
    client,
    base: str,
    project: str,
    token: str,
    per_rater: int,
    dup_every: int,
    result: LoadResult,
    deadline: float,
) -> None:
    try:
        await _rater_loop(client, base, project, token, per_rater, dup_every, result, deadline)
    except _Failed as err:
        result.errors.append(str(err))


async def _rater_loop(
    client,
    base: str,
    project: str,
    token: str,
    per_rater: int,
    dup_every: int,
    result: LoadResult,
    deadline: float,
) -> None:
    r = await client.post(base + "/login", data={"token": token}, follow_redirects=False)
    if r.status_code != 303:
        result.errors.append(f"login: {r.status_code}")
        return
    csrf = (await client.get(base + "/api/me")).json()["csrf_token"]
    headers = {"x-csrf-token": csrf}
    for n in range(per_rater):
        if time.monotonic() > deadline:
            result.errors.append("deadline passed")
            return
        t0 = time.perf_counter()
        task = await _next(client, base, project, headers)
        result.next_latency.append(time.perf_counter() - t0)
        if task is None:
            result.nothing_left += 1
            await asyncio.sleep(0.2)  # a moment later, as a person pressing "next" again would
            task = await _next(client, base, project, headers)
            if task is None:
                result.errors.append("no task left")
                return
            result.nothing_left_then_task += 1
        k = len(task["responses"])
        body = {"submission_id": uuid.uuid4().hex, "task_id": task["task_id"], "ranks": list(range(k, 0, -1))}
        t0 = time.perf_counter()
        r = await client.post(f"{base}/api/p/{project}/submit", json=body, headers=headers)
        if r.status_code != 200:
            result.errors.append(f"submit: {r.status_code} {r.text[:200]}")
            continue
        result.submit_latency.append(time.perf_counter() - t0)
        result.acknowledged += 1
        if dup_every and n % dup_every == 0:  # a retry of an acknowledged submission, as after a lost reply
            result.duplicates_sent += 1
            again = await client.post(f"{base}/api/p/{project}/submit", json=body, headers=headers)
            result.duplicate_acks += again.status_code == 200 and again.json().get("duplicate") is True


async def _load(
    base: str, project: str, tokens: list[str], per_rater: int, dup_every: int, time_limit: float
) -> LoadResult:
    import httpx

    result = LoadResult(len(tokens), per_rater, 0.0, 0, 0, 0)
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    clients = [httpx.AsyncClient(timeout=60.0, limits=limits) for _ in tokens]
    t0 = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                _rater(c, base, project, tok, per_rater, dup_every, result, deadline)
                for c, tok in zip(clients, tokens)
            )
        )
    finally:
        result.seconds = time.perf_counter() - t0
        await asyncio.gather(*(c.aclose() for c in clients))
    return result


def run_load(
    base: str, project: str, tokens: list[str], per_rater: int, dup_every: int = 5, time_limit: float = 120.0
) -> LoadResult:
    """Each token is one rater with its own client (cookies, connection) submitting ``per_rater``
    rankings concurrently with all the others; every ``dup_every``-th one is sent twice."""
    return asyncio.run(_load(base, project, tokens, per_rater, dup_every, time_limit))
