"""Appending to a lake table from Python with the same commit protocol as Spark's file sink.

Data files are written first (each to a temporary name, then renamed), then one new batch
file `_spark_metadata/<N>` lists them; it is written to a temporary name and hard-linked into
place, which fails if another writer took N (then N + 1 is tried). Readers that follow the log
(`lake.connect()`) see all of a batch or none of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lake.commit_log import LOG_DIR, log_files, relative_path
from lake.manifest import hidden, read_manifest, replaced_files
from lake.schema import Column, to_arrow
from lake.tables import TABLES

# As Spark's file sink: every 10th batch's log file (`N.compact`) folds in all entries so far,
# and the numbered files it supersedes are deleted once they are this old (readers that
# listed the log before the compaction may still be reading them).
COMPACT_INTERVAL = 10
LOG_CLEANUP_DELAY_S = 600.0


def log_entry(path: Path, modification_ms: int | None = None) -> dict[str, object]:
    """One `_spark_metadata` line for a data file, in the file sink's own format."""
    stat = path.stat()
    return {
        "path": path.resolve().as_uri(), "size": stat.st_size, "isDir": False,
        "modificationTime": int(stat.st_mtime * 1000) if modification_ms is None else modification_ms,
        "blockReplication": 1, "blockSize": 33554432, "action": "add",
    }  # fmt: skip


def _next_batch(log_dir: Path) -> int:
    ids = [int(p.name.removesuffix(".compact")) for p in log_files(log_dir.parent)]
    return max(ids, default=-1) + 1


@contextlib.contextmanager
def _log_file(log_dir: Path, lines: list[str]) -> Iterator[Path]:
    """A complete log file under a temporary name, to hard-link into place (a link fails if the name is taken)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=log_dir, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(["v1", *lines]))
    try:
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def _commit(log_dir: Path, lines: list[str]) -> int:
    with _log_file(log_dir, lines) as tmp:
        for _ in range(100):
            batch = _next_batch(log_dir)
            try:
                os.link(tmp, log_dir / str(batch))
                return batch
            except FileExistsError:
                continue
        raise RuntimeError(f"{log_dir}: could not claim a batch number")


def _write_files(
    lake: Path, table: str, rows: pa.Table, columns: tuple[Column, ...], sort_by: str | None, batch: int | None = None
) -> list[str]:
    """Data files for `rows`, one per table partition; returns their log lines (nothing committed yet).

    With `batch`, each file is named after its log batch (`part-b<N>-…`), which lets a
    compaction take every file up to a batch at once (`lake.manifest`)."""
    table_dir = lake / table
    parts = TABLES[table].partition_by
    schema = to_arrow(tuple(c for c in columns if c.name not in parts))
    keys = rows.select(list(parts)).to_pylist()
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(tuple(key[p] for p in parts), []).append(i)
    entries = []
    for values, idx in sorted(groups.items(), key=repr):
        folder = table_dir.joinpath(*(f"{p}={v}" for p, v in zip(parts, values, strict=True)))
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-00000-{uuid.uuid4()}" if batch is None else f"part-b{batch}-{uuid.uuid4()}"
        path = folder / f"{name}.c000.zstd.parquet"
        tmp = folder / f".{path.name}.tmp"
        part = rows.take(idx).select(schema.names).cast(schema)
        if sort_by is not None:
            part = part.sort_by(sort_by)
        pq.write_table(part, tmp, compression="zstd")
        tmp.rename(path)
        entries.append(json.dumps(log_entry(path)))
    return entries


def append(lake: Path, table: str, rows: pa.Table, columns: tuple[Column, ...]) -> int:
    """Write `rows` (with the partition columns) as one committed batch; returns files written."""
    entries = _write_files(lake, table, rows, columns, None)
    if entries:
        _commit(lake / table / LOG_DIR, entries)
    return len(entries)


def batch_committed(table_dir: Path, batch_id: int) -> bool:
    log_dir = table_dir / LOG_DIR
    return (log_dir / str(batch_id)).exists() or (log_dir / f"{batch_id}.compact").exists()


def write_batch(
    lake: Path, table: str, batch_id: int, rows: pa.Table, columns: tuple[Column, ...], sort_by: str | None = None
) -> bool:
    """Commit `rows` as the table's batch `batch_id`, exactly once: False if that batch is already in the log.

    The stream job calls this from `foreachBatch`; Spark re-runs a batch that did not finish with
    the same input and state, so a batch found in the log was written whole before. Like
    Spark's sink, it logs every batch (an empty one too) and compacts the log every 10th.
    """
    table_dir = lake / table
    if batch_committed(table_dir, batch_id):
        return False
    log_batch(table_dir, batch_id, _write_files(lake, table, rows, columns, sort_by, batch_id))
    return True


def log_batch(table_dir: Path, batch_id: int, entries: list[str]) -> None:
    """Commit batch `batch_id`'s log lines as Spark's sink does, folding the log every 10th batch."""
    log_dir = table_dir / LOG_DIR
    compact = (batch_id + 1) % COMPACT_INTERVAL == 0
    lines = (_live_entries(table_dir) + entries) if compact else entries
    with _log_file(log_dir, lines) as tmp:
        try:
            os.link(tmp, log_dir / (f"{batch_id}.compact" if compact else str(batch_id)))
        except FileExistsError:
            raise RuntimeError(f"{log_dir}: batch {batch_id} was committed by another writer meanwhile") from None
    if compact:
        _delete_superseded(log_dir, batch_id)


def _live_entries(table_dir: Path) -> list[str]:
    """The log lines of every committed file the compaction manifest has not replaced (as a log
    compaction writes them): the log keeps only the part of the lake not yet compacted."""
    manifest = read_manifest(table_dir)
    replaced = replaced_files(manifest)
    lines: dict[str, str] = {}
    for log_file in log_files(table_dir):
        for line in log_file.read_text().splitlines()[1:]:
            if line.strip():
                entry = json.loads(line)
                if entry.get("action", "add") == "add":
                    lines[entry["path"]] = line
                else:
                    lines.pop(entry["path"], None)
    return [line for path, line in lines.items() if not hidden(relative_path(path), manifest, replaced)]


def _delete_superseded(log_dir: Path, compact_id: int) -> None:
    """Log files before the previous compaction, once older than the clean-up delay."""
    cutoff = time.time() - LOG_CLEANUP_DELAY_S
    keep_from = compact_id - COMPACT_INTERVAL
    for path in log_dir.iterdir():
        stem = path.name.removesuffix(".compact")
        if stem.isdigit() and int(stem) < keep_from and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
