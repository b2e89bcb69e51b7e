"""The lake reader sees exactly the files the Spark sink's log committed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lake
from lake.commit_log import committed_files


def _log(table: Path, name: str, paths: list[str], action: str = "add") -> None:
    log_dir = table / "_spark_metadata"
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = ["v1"] + [
        json.dumps(
            {
                "path": p,
                "size": 1,
                "isDir": False,
                "modificationTime": 0,
                "blockReplication": 1,
                "blockSize": 1,
                "action": action,
            }
        )
        for p in paths
    ]
    (log_dir / name).write_text("\n".join(lines) + "\n")


def test_newest_compact_plus_later_batches(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _log(table, "8", ["file:///old/t/a=1/f8.parquet"])
    _log(table, "9.compact", ["file:///old/t/a=1/f0.parquet", "file:///old/t/a=1/f9.parquet"])
    _log(table, "10", ["file:///old/t/a=2/f10.parquet"])
    (table / "_spark_metadata" / ".10.crc").write_text("x")
    got = committed_files(table)
    # Relocated under the table folder even though the log names another absolute path.
    assert got == [table / "a=1/f0.parquet", table / "a=1/f9.parquet", table / "a=2/f10.parquet"]


def test_delete_entries_remove_files(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _log(table, "0", ["file:///x/t/f0.parquet", "file:///x/t/f1.parquet"])
    _log(table, "1", ["file:///x/t/f0.parquet"], action="delete")
    assert committed_files(table) == [table / "f1.parquet"]


def test_missing_log_means_no_files(tmp_path: Path) -> None:
    assert committed_files(tmp_path / "nothing") == []


def test_orphan_files_from_a_crashed_batch_are_invisible(tmp_path: Path) -> None:
    table = tmp_path / "lake" / "rejects"
    part = table / "date=2024-08-09"
    part.mkdir(parents=True)
    schema = pa.schema(
        [
            ("reason", pa.string()),
            ("raw", pa.string()),
            ("kafka_key", pa.string()),
            ("kafka_topic", pa.string()),
            ("kafka_partition", pa.int64()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
        ]
    )
    row = {
        "reason": ["bad_price"],
        "raw": ["{}"],
        "kafka_key": [None],
        "kafka_topic": ["t"],
        "kafka_partition": [0],
        "kafka_offset": [1],
        "kafka_timestamp": [0],
    }
    pq.write_table(pa.table(row, schema=schema), part / "committed.parquet")
    pq.write_table(pa.table(row, schema=schema), part / "orphan.parquet")  # complete but never committed
    (part / "torn.parquet").write_bytes(b"")  # a zero-byte file left by kill -9
    _log(table, "0", [f"file://{part}/committed.parquet"])
    con = lake.connect(tmp_path / "lake")
    assert con.sql("SELECT count(*) FROM rejects").fetchall() == [(1,)]
