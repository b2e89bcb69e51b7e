"""The Spark file sink's commit log (`<table>/_spark_metadata/`): which files are committed.

Each batch N writes a file `N`: a `v1` line, then one JSON entry per file
({"path": "file:///abs/...parquet", "action": "add", ...}). Every 10 batches
Spark folds all entries so far into `N.compact`. The committed set is the
newest `.compact` plus every numbered file after it. Files in the table folder
that the log does not list (left by a crashed batch) are not committed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import orjson

LOG_DIR = "_spark_metadata"


def _batch_id(name: str) -> int | None:
    stem = name.removesuffix(".compact")
    return int(stem) if stem.isdigit() else None


def log_files(table_dir: Path) -> list[Path]:
    """The log files that together list the committed set, oldest first."""
    log_dir = table_dir / LOG_DIR
    if not log_dir.is_dir():
        return []
    batches = [(bid, p) for p in log_dir.iterdir() if (bid := _batch_id(p.name)) is not None]
    compacts = [bid for bid, p in batches if p.name.endswith(".compact")]
    newest_compact = max(compacts, default=-1)
    chosen = [
        (bid, p)
        for bid, p in batches
        if bid > newest_compact or (bid == newest_compact and p.name.endswith(".compact"))
    ]
    return [p for _, p in sorted(chosen)]


def relative_path(uri: str) -> str:
    """The part of a logged path below the table folder: partition folders + file name.

    String work only: this runs once per committed file (tens of thousands per table).
    """
    path = uri.split("://", 1)[1] if "://" in uri else uri.removeprefix("file:")
    if "%" in path:
        path = unquote(path)
    parts = path.split("/")
    start = len(parts) - 1
    while start > 0 and "=" in parts[start - 1]:
        start -= 1
    return "/".join(parts[start:])


def committed_relative(table_dir: Path) -> list[str]:
    """Committed data files of a table, relative to its folder, in log order."""
    files: dict[str, None] = {}
    for log_file in log_files(table_dir):
        lines = log_file.read_bytes().splitlines()
        if not lines or lines[0].strip() != b"v1":
            raise ValueError(f"{log_file}: unsupported file sink log version {lines[:1]}")
        for line in lines[1:]:
            if not line.strip():
                continue
            entry = orjson.loads(line)
            rel = relative_path(entry["path"])
            if entry.get("action", "add") == "add":
                files[rel] = None
            else:
                files.pop(rel, None)
    return list(files)


def committed_files(table_dir: Path) -> list[Path]:
    """Committed data files of a table, located under `table_dir` even if the lake moved."""
    return [table_dir / rel for rel in committed_relative(table_dir)]
