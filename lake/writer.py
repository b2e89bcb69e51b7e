"""Appending to a lake table from Python with the same commit protocol as Spark's file sink.

Data files are written first (each to a temporary name, then renamed), then one new batch
file `_spark_metadata/<N>` lists them; it is written to a temporary name and hard-linked into
place, which fails if another writer took N (then N + 1 is tried). Readers that follow the log
(`lake.connect()`) see all of a batch or none of it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lake.commit_log import LOG_DIR, log_files
from lake.schema import PARTITION_COLUMNS, Column, to_arrow


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


def _commit(log_dir: Path, lines: list[str]) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=log_dir, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(["v1", *lines]))
    try:
        for _ in range(100):
            batch = _next_batch(log_dir)
            try:
                os.link(tmp, log_dir / str(batch))
                return batch
            except FileExistsError:
                continue
        raise RuntimeError(f"{log_dir}: could not claim a batch number")
    finally:
        os.unlink(tmp)


def append(lake: Path, table: str, rows: pa.Table, columns: tuple[Column, ...]) -> int:
    """Write `rows` (with the partition columns) as one committed batch; returns files written."""
    table_dir = lake / table
    parts = PARTITION_COLUMNS[table]
    schema = to_arrow(tuple(c for c in columns if c.name not in parts))
    keys = rows.select(list(parts)).to_pylist()
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(tuple(key[p] for p in parts), []).append(i)
    entries = []
    for values, idx in sorted(groups.items(), key=repr):
        folder = table_dir.joinpath(*(f"{p}={v}" for p, v in zip(parts, values, strict=True)))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-00000-{uuid.uuid4()}.c000.zstd.parquet"
        tmp = folder / f".{path.name}.tmp"
        pq.write_table(rows.take(idx).select(schema.names).cast(schema), tmp, compression="zstd")
        tmp.rename(path)
        entries.append(json.dumps(log_entry(path)))
    if entries:
        _commit(table_dir / LOG_DIR, entries)
    return len(entries)
