"""Writing record files whole: a file is either complete or absent, never half written."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_jsonl_atomic(path: str | Path, rows: list[dict]) -> Path:
    """Write to a temp file and rename, so an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    return path
