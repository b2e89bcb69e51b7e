"""Compaction and retention for the lake's tables.

`compact` rewrites a partition's live files (the stream job's one file per batch, plus any
earlier compacted file) into fewer, time-sorted Parquet files under
`<table>/_compacted/<partition>/`, then commits a new manifest version that swaps them
(`lake.manifest`):
- a closed partition (its date before the cutoff) ends as one file;
- an open one (today) as one file per hour of its rows (`part-h<HH>-…`): each run merges the
  files written since the last one into their hours' files, so today's partition holds at
  most 24 compacted files plus what the job wrote since.

Every committed file holds final rows and never changes (the job writes a bar once the
watermark has closed it), so any committed file may be compacted at any time; the cutoff
only decides the layout. The stream job keeps writing while this runs: a file of a batch the
compaction did not take stays visible. Readers of `lake.connect()` see exactly the same rows
before, during and after.

The cutoff is `before` if given, else the date of the table's newest watermark in
`lake/_progress` (for tables without event time, rejects and feed events: today, UTC), and
never later than today.

`vacuum` removes partitions whose date is older than the retention, and deletes files that no
reader needs any more (the files a compaction replaced, once `grace` has passed, so a
connection opened just before the compaction can still read them). Spark's own sink log keeps
listing deleted files: a Spark batch read of the table after a vacuum needs
`spark.sql.files.ignoreMissingFiles=true`; `lake.connect()` needs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from tqdm import tqdm

from lake.manifest import (
    COMPACTED_DIR,
    Manifest,
    ManifestConflict,
    PartitionEntry,
    batch_of,
    hidden,
    partition_of,
    prune_versions,
    read_manifest,
    replaced_files,
    sink_files,
    write_manifest,
)
from lake.reader import progress_view_sql
from lake.schema import duckdb_type
from lake.settings import Settings, duration
from lake.tables import TABLES

log = logging.getLogger("lake.compaction")

# The query in lake/_progress whose watermark closes each table's partitions.
DEFAULT_GRACE_S = duration(Settings.default("lake_grace")).total_seconds()


@dataclass(frozen=True)
class CompactionReport:
    table: str
    cutoff: dt.date
    partitions: int  # partitions rewritten
    files_before: int  # live files in those partitions before
    files_after: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class VacuumReport:
    table: str
    retired_partitions: int
    deleted_files: int
    deleted_bytes: int


def partition_date(partition: str) -> dt.date | None:
    for part in partition.split("/"):
        if part.startswith("date="):
            return dt.date.fromisoformat(part.removeprefix("date="))
    return None


def watermark_date(lake: Path, table: str) -> dt.date | None:
    """The date of the newest watermark the job reported for `table`, if any."""
    query = TABLES[table].watermark_query
    folder = lake / "_progress"
    if query is None or not folder.is_dir():
        return None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(progress_view_sql(lake))
    newest = con.execute("SELECT max(watermark) FROM progress WHERE query = ?", [query]).fetchall()[0][0]
    con.close()
    return None if newest is None else newest.astimezone(dt.UTC).date()


def cutoff_date(lake: Path, table: str, before: dt.date | None, today: dt.date | None = None) -> dt.date:
    today = today or dt.datetime.now(dt.UTC).date()
    chosen = before or watermark_date(lake, table) or today
    return min(chosen, today)


def _rewrite(
    con: duckdb.DuckDBPyConnection,
    table: str,
    table_dir: Path,
    partition: str,
    files: list[Path],
    hour: dt.datetime | None = None,
) -> tuple[str, int]:
    """One time-sorted Parquet file with the rows of `files` (only those of `hour`, if given);
    returns (path relative to the table, rows)."""
    spec = TABLES[table]
    if spec.varying_columns:  # the windows are configurable: keep whatever columns the files hold
        select = "* EXCLUDE (" + ", ".join(spec.partition_by) + ")"
    else:
        select = ", ".join(f"CAST({c.name} AS {duckdb_type(c.type)}) AS {c.name}" for c in spec.file_columns())
    order = spec.row_time
    where = ""
    params: list[Any] = [[str(f) for f in files]]
    name = f"part-{uuid.uuid4().hex}.parquet"
    if hour is not None:
        where = f" WHERE date_trunc('hour', {order}) = ?"
        params.append(hour)
        name = f"part-h{hour.hour:02d}-{uuid.uuid4().hex}.parquet"
    relative = f"{COMPACTED_DIR}/{partition}/{name}"
    target = table_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".tmp")
    con.execute(
        f"COPY (SELECT {select} FROM read_parquet(?, hive_partitioning = true, union_by_name = true){where} "
        f"ORDER BY {order}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)",
        params,
    )
    tmp.rename(target)
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchall()[0][0]
    return relative, int(rows)


def _newest_rows(con: duckdb.DuckDBPyConnection, table: str, table_dir: Path, partition: str, files: list[Path]) -> str:
    """A file with the newest row per `newest_summary_key` of `files`; returns its path relative to the table."""
    spec = TABLES[table]
    cols = ", ".join(f"CAST({c.name} AS {duckdb_type(c.type)}) AS {c.name}" for c in spec.file_columns())
    relative = f"{COMPACTED_DIR}/{partition}/newest-{uuid.uuid4().hex}.parquet"
    target = table_dir / relative
    tmp = target.with_name("." + target.name + ".tmp")
    con.execute(
        f"COPY (SELECT {cols} FROM read_parquet(?, union_by_name = true) QUALIFY row_number() OVER "
        f"(PARTITION BY {spec.newest_summary_key} ORDER BY {spec.row_time} DESC) = 1) TO '{tmp}' (FORMAT parquet)",
        [[str(f) for f in files]],
    )
    tmp.rename(target)
    return relative


_HOUR_FILE = re.compile(r"/part-h(\d\d)-[^/]*$")


def file_hour(relative: str) -> int | None:
    """The hour of a compacted hour file (`part-h<HH>-…`), None for a whole partition's file."""
    m = _HOUR_FILE.search("/" + relative)
    return int(m[1]) if m else None


@dataclass
class _Work:
    partition: str
    fresh: list[str]  # live sink files the compaction takes
    closed: bool  # one file for the partition, else one per hour


def _plan(manifest: Manifest, sink: list[str], cutoff: dt.date, in_day: bool) -> list[_Work]:
    replaced = replaced_files(manifest)
    by_partition: dict[str, list[str]] = defaultdict(list)
    for rel in sink:
        if not hidden(rel, manifest, replaced):
            by_partition[partition_of(rel)].append(rel)
    todo = []
    for partition in sorted(set(by_partition) | set(manifest.partitions)):
        day = partition_date(partition)
        if day is None or partition in manifest.retired:
            continue
        fresh = by_partition.get(partition, [])
        entry = manifest.partitions.get(partition)
        if day < cutoff:
            hour_files = entry is not None and any(file_hour(f) is not None for f in entry.files)
            if (fresh and (len(fresh) > 1 or entry is not None)) or hour_files:
                todo.append(_Work(partition, fresh, closed=True))
        elif in_day and fresh:
            todo.append(_Work(partition, fresh, closed=False))
    return todo


def compact(
    lake: str | Path,
    table: str = "ohlc",
    before: dt.date | None = None,
    *,
    progress: bool = True,
    commit_every: int = 50,
    in_day: bool = False,
) -> CompactionReport:
    """Compact `table`'s closed partitions, and with `in_day` its open ones by hour (see the module docstring)."""
    started = time.perf_counter()
    lake = Path(lake).resolve()
    table_dir = lake / table
    cutoff = cutoff_date(lake, table, before)
    sink = sink_files(table_dir)  # before the manifest, as readers do
    manifest = read_manifest(table_dir, garbage=True)
    todo = _plan(manifest, sink, cutoff, in_day)
    files_before = files_after = rows_total = 0
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    pending: dict[str, PartitionEntry] = {}
    garbage: list[tuple[str, float]] = []
    written: list[str] = []

    def commit() -> None:
        nonlocal manifest
        if not pending:
            return
        manifest = replace(
            manifest,
            version=manifest.version + 1,
            partitions={**manifest.partitions, **pending},
            garbage=(*manifest.garbage, *garbage),
        )
        try:
            write_manifest(table_dir, manifest)
        except ManifestConflict:
            _delete(table_dir / f for f in written)  # this run's files: no manifest names them
            raise
        pending.clear()
        garbage.clear()
        written.clear()

    for work in tqdm(todo, desc=f"compact {table}", unit="partition", disable=not progress):
        entry = manifest.partitions.get(work.partition)
        old_files = list(entry.files) if entry else []
        fresh_paths = [table_dir / f for f in work.fresh]
        now = time.time()
        if work.closed:
            relative, _ = _rewrite(
                con, table, table_dir, work.partition, [table_dir / f for f in old_files] + fresh_paths
            )
            new_files, dropped = [relative], old_files
        else:
            hours = [
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT date_trunc('hour', {TABLES[table].row_time}) FROM read_parquet(?) ORDER BY 1",
                    [[str(f) for f in fresh_paths]],
                ).fetchall()
            ]
            new_files, dropped = [], []
            for hour in hours:
                old_hour = [f for f in old_files if file_hour(f) == hour.hour]
                relative, _ = _rewrite(
                    con, table, table_dir, work.partition, [table_dir / f for f in old_hour] + fresh_paths, hour
                )
                new_files.append(relative)
                dropped += old_hour
            new_files = sorted([f for f in old_files if f not in dropped] + new_files)
        newest = ""
        if TABLES[table].newest_summary_key:  # each exchange's newest row: the old summary's and the new files'
            sources = [entry.newest] if entry and entry.newest else old_files
            newest = _newest_rows(con, table, table_dir, work.partition, [table_dir / f for f in sources] + fresh_paths)
            written.append(newest)
            if entry and entry.newest:
                dropped.append(entry.newest)
        written.extend(f for f in new_files if f not in old_files)
        rows = sum(pq.read_metadata(table_dir / f).num_rows for f in new_files)
        untagged = [f for f in work.fresh if batch_of(f) is None]
        tagged = [f for f in work.fresh if batch_of(f) is not None]
        pending[work.partition] = PartitionEntry(
            files=tuple(new_files),
            replaces=(*(entry.replaces if entry else ()), *untagged),
            rows=rows,
            compacted_at=now,
            sealed_batch=max([batch_of(f) or -1 for f in tagged] + [entry.sealed_batch if entry else -1]),
            newest=newest,
        )
        garbage.extend((f, now) for f in (*dropped, *tagged))
        files_before += len(old_files) + len(work.fresh)
        files_after += len(new_files)
        rows_total += rows
        if len(pending) >= commit_every:
            commit()
    commit()
    con.close()
    report = CompactionReport(
        table, cutoff, len(todo), files_before, files_after, rows_total, time.perf_counter() - started
    )
    log.info(
        "compacted table=%s partitions=%d files=%d rows=%d cutoff=%s in %.1fs",
        table, report.partitions, report.files_before, report.rows, cutoff, report.seconds,
    )  # fmt: skip
    return report


def _delete(paths: Iterable[Path]) -> tuple[int, int]:
    count = size = 0
    for path in paths:
        try:
            size += path.stat().st_size
            path.unlink()
            count += 1
        except FileNotFoundError:
            continue
    return count, size


def vacuum(
    lake: str | Path,
    table: str,
    older_than: dt.timedelta | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    today: dt.date | None = None,
) -> VacuumReport:
    """Retire partitions older than `older_than` and delete files no reader needs any more."""
    lake = Path(lake).resolve()
    table_dir = lake / table
    manifest = read_manifest(table_dir, garbage=True)
    today = today or dt.datetime.now(dt.UTC).date()
    sink = sink_files(table_dir)
    retire: set[str] = set()
    if older_than is not None:
        oldest_kept = today - older_than
        partitions = (set(manifest.partitions) | {partition_of(f) for f in sink}) - manifest.retired
        retire = {p for p in partitions if (d := partition_date(p)) is not None and d < oldest_kept}
    now = time.time()
    doomed: set[str] = set()
    kept_partitions = dict(manifest.partitions)
    for partition in retire:
        entry = kept_partitions.pop(partition, None)
        if entry is not None:
            doomed.update((*entry.files, *([entry.newest] if entry.newest else [])))
    # Files of a retired partition are unreadable through the new manifest right away, but a
    # connection opened before may still read them: they are deleted after the grace period.
    new_garbage = [(f, now) for f in sink if partition_of(f) in retire] + [(f, now) for f in doomed]
    # The small files a compaction replaced, once the grace period has passed.
    replaced_due = [
        (f, e.compacted_at)
        for e in kept_partitions.values()
        for f in e.replaces
        if now - e.compacted_at >= grace_s and (table_dir / f).exists()
    ]
    garbage = [*manifest.garbage, *new_garbage, *replaced_due]
    due = [g for g in garbage if now - g[1] >= grace_s]
    later = [g for g in garbage if now - g[1] < grace_s]
    if retire or due or later != list(manifest.garbage):
        write_manifest(
            table_dir,
            replace(
                manifest,
                version=manifest.version + 1,
                partitions=kept_partitions,
                retired=manifest.retired | retire,
                garbage=tuple(later),
            ),
        )
    count, size = _delete(table_dir / f for f, _ in due)
    prune_versions(table_dir, grace_s)  # old manifest versions: a pass every 30 s writes one
    report = VacuumReport(table, len(retire), count, size)
    log.info("vacuum table=%s retired=%d deleted=%d bytes=%d", table, len(retire), count, size)
    return report
