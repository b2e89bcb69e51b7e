"""The lake's tables are Delta tables, committed by one library: delta-rs (`deltalake`).

Every writer of the project (the stream job's sink, `python -m models score`, maintenance)
commits through this module, so all commits to a table use delta-rs's put-if-absent log
writes: on a local disk two writers can never both take a version (Spark's Delta writer
would use a local log store that may overwrite; it never writes these tables).

A table is created with the project's schema (`core.schema`), its partition columns
(`core.tables`) and the log settings below, at reader version 1 and writer version 2: no
column mapping, no deletion vectors, so delta-rs, delta-spark, Polars and DuckDB all read it.

Exactly once: `append(..., txn=(app_id, version))` commits the rows with a Delta app
transaction, and first reads the table's transaction version for `app_id`: a version it
already holds is not written again (delta-rs does not skip it by itself).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from core.schema import Column, to_arrow
from core.settings import Settings, duration
from core.tables import TABLES, TableSpec

log = logging.getLogger(__name__)

LOG_DIR = "_delta_log"
# Spark reads the lake with Delta's own connector, which pairs with the pinned Spark (4.0): the
# README's snippet and the cross-engine test use this coordinate (Maven Central).
DELTA_SPARK_PACKAGE = "io.delta:delta-spark_2.13:4.0.0"
COMMIT_ATTEMPTS = 5  # our own retries of a commit that lost a race (delta-rs retries inside each too)
# The old home-made format's markers (Spark's file-sink log, the compaction manifest).
OLD_FORMAT_MARKERS = ("_spark_metadata", "_compacted")


class OldLakeFormat(RuntimeError):
    """The folder holds a lake in the format before Delta Lake."""


@dataclass(frozen=True)
class LogSettings:
    """The Delta table properties that bound the log (see README, "The lake is Delta Lake")."""

    checkpoint_interval: int
    log_retention_s: int
    deleted_file_retention_s: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LogSettings:
        lake = (settings or Settings()).lake
        return cls(
            lake.checkpoint_interval,
            int(duration(lake.log_retention).total_seconds()),
            int(duration(lake.grace).total_seconds()),
        )

    def properties(self) -> dict[str, str]:
        return {
            "delta.checkpointInterval": str(self.checkpoint_interval),
            "delta.logRetentionDuration": f"interval {self.log_retention_s} seconds",
            "delta.deletedFileRetentionDuration": f"interval {self.deleted_file_retention_s} seconds",
            "delta.enableExpiredLogCleanup": "true",
        }


WRITER_PROPERTIES = WriterProperties(compression="ZSTD")
# OPTIMIZE's files of the bar tables: row groups of an hour of one market's 1 s bars, so that a
# query for recent rows (latest_bars, the last minutes of a day) reads one row group of a
# compacted day, not all (`TableSpec.compacted_row_group_rows`).
COMPACTED_ROW_GROUP_ROWS = TABLES["ohlc"].compacted_row_group_rows
DELTA_ENCODED_TYPES = ("int64", "timestamp")


def compacted_properties(spec: TableSpec) -> WriterProperties:
    """OPTIMIZE's writer settings for a table: ZSTD, its row group size, and for a delta-encoded
    table DELTA_BINARY_PACKED integer and time columns and dictionaries for strings only. A tick
    table's ids, offsets and times rise within a file, so their deltas are a few bits; plain
    dictionaries of unique ids and decimals only add a page (bench/tick_storage.py: lake/trades
    from 14.2 to ~6 MB per million real trades, half of the same trades as gzip NDJSON). Every
    reader of the lake (delta-rs, DuckDB, Polars, Spark) decodes DELTA_BINARY_PACKED."""
    columns: dict[str, ColumnProperties] | None = None
    if spec.delta_encoded:
        columns = {
            c.name: ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
            if c.type in DELTA_ENCODED_TYPES
            else ColumnProperties(dictionary_enabled=c.type == "string")
            for c in spec.file_columns()
        }
    return WriterProperties(
        compression="ZSTD", max_row_group_size=spec.compacted_row_group_rows, column_properties=columns
    )


def table_path(lake: str | Path, name: str) -> Path:
    return Path(lake) / name


def is_table(lake: str | Path, name: str) -> bool:
    return (table_path(lake, name) / LOG_DIR).is_dir()


def refuse_old_format(lake: str | Path) -> None:
    """Raise OldLakeFormat, naming the way out, if `lake` holds tables of the pre-Delta format."""
    root = Path(lake)
    old = [name for name in TABLES for marker in OLD_FORMAT_MARKERS if (root / name / marker).exists()]
    if old and not all(is_table(root, name) for name in set(old)):
        raise OldLakeFormat(
            f"{root} holds a lake in the format before Delta Lake ({', '.join(sorted(set(old)))}: Spark's file-sink "
            "log and our compaction manifest). This version reads and writes Delta tables only. Rebuild the lake: "
            "point LAKE_PATH and CHECKPOINT_PATH at new folders (the defaults are data/lake and data/checkpoints) "
            "and run the job again from Kafka (--starting-offsets earliest, within the topic's retention) or replay "
            "the tapes you recorded (python -m ingest replay), then delete the old folder."
        )


def open_table(lake: str | Path, name: str) -> DeltaTable | None:
    """The table at its newest version, None if absent (time travel: `DeltaTable.load_as_version`)."""
    path = table_path(lake, name)
    if not (path / LOG_DIR).is_dir():
        return None
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def create_table(
    lake: str | Path, name: str, columns: tuple[Column, ...], log_settings: LogSettings | None = None
) -> DeltaTable:
    """Create the table (or open it, if another writer just did)."""
    refuse_old_format(lake)
    path = table_path(lake, name)
    path.mkdir(parents=True, exist_ok=True)
    spec = TABLES[name]
    props = (log_settings or LogSettings.from_settings()).properties()
    try:
        return DeltaTable.create(
            str(path), to_arrow(columns), mode="error", partition_by=list(spec.partition_by),
            name=name, description=spec.doc, configuration=props,
        )  # fmt: skip
    except DeltaError as exc:
        if "already exists" not in str(exc).lower():
            raise
        table = open_table(lake, name)
        assert table is not None
        return table


def ensure_table(lake: str | Path, name: str, columns: tuple[Column, ...]) -> DeltaTable:
    """The table, created if needed, with every column of `columns` (columns are added, never dropped)."""
    table = open_table(lake, name) or create_table(lake, name, columns)
    add_missing_columns(table, columns)
    return table


def add_missing_columns(table: DeltaTable, columns: tuple[Column, ...]) -> None:
    from deltalake import Field

    have = set(table_columns(table))
    missing = [c for c in columns if c.name not in have]
    refuse_without_defaults(table, missing)
    if missing:
        # Added columns are nullable: files written before them hold none (they read as NULL).
        fields = [Field.from_arrow(pa.field(c.name, to_arrow((c,)).field(0).type, True)) for c in missing]
        table.alter.add_columns(fields)
        log.info("table %s: added columns %s", table.metadata().name, ", ".join(c.name for c in missing))


def refuse_without_defaults(table: DeltaTable, missing: list[Column]) -> None:
    """Raise OldLakeFormat if the table lacks a column every row must hold (`Column.default`:
    `revision`): its files hold none, and a column added now would read as NULL for them."""
    lacking = [c.name for c in missing if c.default is not None]
    if lacking:
        name = table.metadata().name
        raise OldLakeFormat(
            f"lake/{name} has no {', '.join(lacking)} column: it was written by a version before late trades "
            "revised the bars. Rebuild the lake: point LAKE_PATH and CHECKPOINT_PATH at new folders and run the job "
            "again from Kafka (--starting-offsets earliest, within the topic's retention) or replay the tapes you "
            "recorded (python -m ingest replay), then delete the old folder."
        )


def table_columns(table: DeltaTable) -> list[str]:
    return [f.name for f in table.schema().fields]


# Columns with a value for rows written without them (`core.schema.Column.default`: revision 0).
DEFAULTS = {c.name: c.default for spec in TABLES.values() for c in spec.columns if c.default is not None}


def conform(rows: pa.Table, table: DeltaTable) -> pa.Table:
    """`rows` in the table's column order and types; its columns that `rows` lacks as their
    default (DEFAULTS), or nulls."""
    schema = pa.schema(table.schema().to_arrow())  # type: ignore[arg-type]
    arrays = []
    for field in schema:
        if field.name in rows.column_names:
            arrays.append(rows.column(field.name).cast(field.type))
        elif field.name in DEFAULTS:
            arrays.append(pa.array([DEFAULTS[field.name]] * rows.num_rows, field.type))
        else:
            arrays.append(pa.nulls(rows.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def append(
    table: DeltaTable,
    rows: pa.Table,
    *,
    txn: tuple[str, int] | None = None,
    sort_by: str | None = None,
) -> bool:
    """Append `rows` as one commit; with `txn` (app id, version), exactly once: False if the
    table already holds that version of the app (or a later one)."""
    partition_by = table.metadata().partition_columns
    if sort_by is not None and rows.num_rows:
        rows = rows.sort_by(sort_by)
    data = conform(rows, table)
    props = None
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        if txn is not None:
            table.update_incremental()
            done = table.transaction_version(txn[0])
            if done is not None and done >= txn[1]:
                return False
            props = CommitProperties(app_transactions=[Transaction(app_id=txn[0], version=txn[1])])
        try:
            write_deltalake(
                table, data, mode="append", partition_by=partition_by, writer_properties=WRITER_PROPERTIES,
                commit_properties=props,
            )  # fmt: skip
            return True
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("table %s: commit lost a race (%s); attempt %d", table.metadata().name, exc, attempt + 1)
            time.sleep(0.05 * attempt)
    return False


def commit_files(
    table: DeltaTable, files: list[dict[str, Any]], *, txn: tuple[str, int], metadata: dict[str, str] | None = None
) -> bool:
    """Commit Parquet files already written into the table's folder (`jobs.tick_writer`: Spark's
    tasks wrote them) as one append, exactly once: False if the table holds `txn` already.

    Each file: path (relative, as in the log), size, its partition values and Delta statistics."""
    from deltalake.transaction import AddAction, RemoveAction

    partition_by = table.metadata().partition_columns
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        AddAction(f["path"], int(f["size"]), {c: f[c] for c in partition_by}, now_ms, True, f["stats"]) for f in files
    ]
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table.update_incremental()
        done = table.transaction_version(txn[0])
        if done is not None and done >= txn[1]:
            return False
        props = CommitProperties(
            app_transactions=[Transaction(app_id=txn[0], version=txn[1])], custom_metadata=metadata
        )
        try:
            table.create_write_transaction(
                actions, mode="append", schema=table.schema(), partition_by=partition_by, commit_properties=props
            )
            return True
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("table %s: commit lost a race (%s); attempt %d", table.metadata().name, exc, attempt + 1)
            time.sleep(0.05 * attempt)
    return False


def merge_revised(table: DeltaTable, rows: pa.Table, key: tuple[str, ...], *, txn: tuple[str, int]) -> bool:
    """Upsert `rows` by `key` as one commit, exactly once (False if the table holds `txn`): a row
    whose key the table holds replaces it, its `revision` the stored one + 1; the others are
    inserted as they are (their own `revision`). delta-rs rewrites only the files it matched."""
    partition_by = table.metadata().partition_columns
    data = conform(rows, table)
    names = table_columns(table)
    on = [f't."{k}" = s."{k}"' for k in (*key, *(c for c in partition_by if c not in key))]
    for column in partition_by:  # literals, so that delta-rs prunes the target's partitions
        values = sorted({str(v) for v in data.column(column).to_pylist()})
        on.append(f't."{column}" IN ({", ".join(_sql_string(v) for v in values)})')
    updates = {c: f's."{c}"' for c in names if c not in key and c not in partition_by}
    updates["revision"] = 'coalesce(t."revision", 0) + 1'
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table.update_incremental()
        done = table.transaction_version(txn[0])
        if done is not None and done >= txn[1]:
            return False
        props = CommitProperties(app_transactions=[Transaction(app_id=txn[0], version=txn[1])])
        try:
            table.merge(
                data, " AND ".join(on), source_alias="s", target_alias="t", writer_properties=WRITER_PROPERTIES,
                streamed_exec=False, commit_properties=props,
            ).when_matched_update(updates).when_not_matched_insert_all().execute()  # fmt: skip
            return True
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("table %s: merge lost a race (%s); attempt %d", table.metadata().name, exc, attempt + 1)
            time.sleep(0.05 * attempt)
    return False


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def append_rows(lake: str | Path, name: str, rows: pa.Table, columns: tuple[Column, ...]) -> int:
    """Create the table if needed and append `rows` once (no app transaction); returns the rows written."""
    if rows.num_rows == 0:
        return 0
    table = ensure_table(lake, name, columns)
    append(table, rows, sort_by=TABLES[name].sort_key)
    return rows.num_rows


def convert_parquet_folder(lake: str | Path, name: str) -> DeltaTable:
    """Make a folder of hive-partitioned Parquet files (as `COPY ... PARTITION_BY` writes them) the
    Delta table `name`, in place: delta-rs's CONVERT TO DELTA, with the lake's table properties."""
    from deltalake import Schema, convert_to_deltalake

    spec = TABLES[name]
    partitions = Schema.from_arrow(to_arrow(tuple(c for c in spec.columns if c.name in spec.partition_by)))
    convert_to_deltalake(
        str(table_path(lake, name)), partition_by=partitions, partition_strategy="hive", name=name,
        description=spec.doc, configuration=LogSettings.from_settings().properties(),
    )  # fmt: skip
    table = open_table(lake, name)
    assert table is not None
    return table


def file_path(table_dir: str, relative: str) -> str:
    """An add action's path as a local path (Delta paths are URIs relative to the table, percent-encoded)."""
    if "://" in relative:
        return unquote(relative.split("://", 1)[1]) if relative.startswith("file://") else relative
    return os.path.join(table_dir, unquote(relative))


def add_actions(table: DeltaTable) -> pa.Table:
    """The current version's files: path (a local path), size_bytes, partition.* and the stats."""
    actions = table.get_add_actions(flatten=True)
    actions = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    table_dir = table.table_uri.removeprefix("file://").rstrip("/")
    paths = [file_path(table_dir, p) for p in actions.column("path").to_pylist()]
    return actions.set_column(actions.column_names.index("path"), "path", pa.array(paths, pa.string()))
