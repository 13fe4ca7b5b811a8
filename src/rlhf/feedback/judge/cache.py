"""An on-disk cache of judge replies, so that a re-run pays for nothing it already asked.

Keyed by a SHA-256 of the model name and the exact request (messages and sampling settings; not
the URL, so the same model behind another address still hits). A reply is stored only once it
was read successfully, and committed at once, so an interrupted run keeps what it paid for.
SQLite: one file, safe to copy, readable with any SQLite tool.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any


def request_key(model: str, request: dict[str, Any]) -> str:
    blob = json.dumps({"model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, body TEXT NOT NULL, at REAL)"
        )
        self.db.commit()

    def get(self, key: str) -> Any | None:
        row = self.db.execute("SELECT body FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, body: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO replies (key, body, at) VALUES (?, ?, ?)",
            (key, json.dumps(body), time.time()),
        )
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self.db.close()
