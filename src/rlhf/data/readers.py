"""Read raw records from JSONL, parquet, or a saved `datasets` directory, remembering where each came from.

Every record carries a location string (``file:line`` for JSONL, ``file row N`` otherwise) so that
a later validation error can point at it. A saved ``DatasetDict`` is read from its ``train``
split, or from the split named after the path: ``dir:train_prefs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file a user gave is wrong; the message names the file, line and field."""


Located = tuple[str, dict[str, Any]]  # (where, record)


def parse_jsonl_lines(lines: Iterable[str], source: str | Path) -> list[Located]:
    """JSON objects of JSONL ``lines``, each located as ``source:line``; blank lines are skipped."""
    rows: list[Located] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        rows.append((where, record))
    return rows


def decode_text(data: bytes, source: str | Path) -> str:
    """UTF-8 bytes of a text file as a string; a leading byte-order mark is dropped (editors on
    Windows write one), and bytes that are not UTF-8 are a DataError naming the line and byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1  # in bytes, 1-based
        raise DataError(
            f"{source}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
            "save the file as UTF-8"
        ) from None


def _read_jsonl(path: Path) -> list[Located]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    # split on newlines only: str.splitlines() would also split inside a JSON string at U+2028
    return parse_jsonl_lines(decode_text(data, path).split("\n"), path)


def _read_table(path: Path, records: list[dict[str, Any]]) -> list[Located]:
    return [(f"{path} row {i}", dict(r)) for i, r in enumerate(records)]


def split_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``dir:split`` -> (dir, split); a path that exists as written is never split."""
    text = str(spec)
    head, sep, split = text.rpartition(":")
    if Path(text).exists() or not sep or not head or not split or "/" in split:
        return Path(text), None
    return Path(head), split


def _read_saved_dataset(path: Path, split: str | None, what: str) -> list[Located]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:  # datasets raises several types for a non-dataset directory
        raise DataError(f"{what}: {path} is not a saved `datasets` directory ({err})") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if split is None and "train" not in ds:
            raise DataError(
                f"{what}: {path} is a DatasetDict without a 'train' split; name one of its splits "
                f"{splits} after the path, as {path}:{splits[0]}"
            )
        split = split or "train"
        if split not in ds:
            raise DataError(f"{what}: {path} has no split {split!r}; its splits are {splits}")
        return [(f"{path}:{split} row {i}", dict(r)) for i, r in enumerate(ds[split].to_list())]
    if split is not None:
        raise DataError(f"{what}: {path} is a single dataset, not a DatasetDict: it has no split {split!r}")
    return _read_table(path, ds.to_list())


def read_records(path: str | Path, what: str = "data") -> list[Located]:
    """All records of the file or directory at ``path`` (``dir:split`` for a DatasetDict's split);
    ``what`` names the config key in errors.

    Raises DataError if the path is missing, unreadable, of an unknown kind, or holds no records.
    """
    if not str(path):  # checked before Path(): Path("") is "." and would be read as a directory
        raise DataError(f"{what}: no data file given")
    path, split = split_spec(path)
    if not path.exists():
        raise DataError(f"{what}: {path} does not exist")
    if split is not None and not path.is_dir():
        raise DataError(
            f"{what}: {path} is a file; only a saved DatasetDict directory has splits ({split!r})"
        )
    if path.is_dir():
        rows = _read_saved_dataset(path, split, what)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:
            raise DataError(f"{what}: {path} is not a readable parquet file ({err})") from None
        rows = _read_table(path, table.to_pylist())
    elif path.suffix in (".jsonl", ".json"):
        rows = _read_jsonl(path)
    else:
        raise DataError(
            f"{what}: {path} has an unknown format; use .jsonl, .parquet or a `datasets` directory"
        )
    if not rows:
        raise DataError(f"{what}: {path} holds no records")
    return rows
