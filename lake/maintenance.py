"""`python -m lake maintain`: Delta's own maintenance, beside the appending job.

Each pass, for every table:
- OPTIMIZE (delta-rs `optimize.compact`): closed partitions (dates before the job's newest
  watermark, or today for tables without event time) into files of up to `CLOSED_TARGET_BYTES`,
  in practice one per partition; open ones (today) into files of up to `OPEN_TARGET_BYTES`, so
  a pass rewrites at most about that much per partition however long the day has run. The
  compaction's commit removes files the job's appends never touch, so the two do not conflict;
  if delta-rs still reports a conflict (delta-rs #2700, #3337) the pass tries again, and a
  commit of the job is never lost (each is its own version).
- Retention: a DELETE of the partitions older than LAKE_RETENTION (a metadata-only commit).
- VACUUM: delete files that no version newer than the grace period needs (delta-rs counts it in
  whole hours: a grace rounds up), and files that no commit ever named (a batch killed before
  its commit) once they are an hour old.
- The log: a checkpoint, then expired-log cleanup (commits older than LAKE_LOG_RETENTION),
  so that opening a table stays fast. delta-rs also does both after every
  `delta.checkpointInterval`-th commit.

One line per action; nothing when there was nothing to do. With `every`, passes repeat until
interrupted.

One maintainer at a time: a pass holds an exclusive lock on `<lake>/_maintain.lock`, and a
second process finds it held, says so and exits 0. Delta would not stop two: delta-rs 1.6
lets two OPTIMIZEs that read the same version both commit (its conflict checker allows
concurrent removes of files whose `dataChange` is false, delta-rs #3982), and both then add
the same rows again (tests/test_maintain.py shows it without the lock). The job's appends
need no lock: they only add files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from core.settings import Settings, duration
from core.tables import TABLES
from lake import delta
from lake.reader import progress_view_sql

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = duration(Settings.default("lake_grace")).total_seconds()
# Today's files stay small (a few hours of one symbol's 1 s bars), so a pass rewrites at most
# about that much per partition however long the day has run; a closed day becomes one file.
OPEN_TARGET_BYTES = 1 << 20
CLOSED_TARGET_BYTES = 256 << 20
ATTEMPTS = 3
ORPHAN_HOURS = 1
LOCK_FILE = "_maintain.lock"


class Busy(RuntimeError):
    """Another maintainer holds the lake's lock."""


@contextlib.contextmanager
def exclusive(lake: Path) -> Iterator[None]:
    lake.mkdir(parents=True, exist_ok=True)
    path = lake / LOCK_FILE
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise Busy(f"{path} is held by {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CompactionReport:
    table: str
    cutoff: dt.date
    partitions: int  # partitions rewritten
    files_before: int  # files those rewrites removed
    files_after: int  # files they added
    seconds: float


@dataclass(frozen=True)
class VacuumReport:
    table: str
    retired_partitions: int
    deleted_files: int


def watermark_date(lake: Path, table: str) -> dt.date | None:
    """The date of the newest watermark the job reported for `table`, if any."""
    query = TABLES[table].watermark_query
    if query is None or not (lake / "_progress").is_dir():
        return None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(progress_view_sql(lake))
    newest = con.execute("SELECT max(watermark) FROM progress WHERE query = ?", [query]).fetchall()[0][0]
    con.close()
    return None if newest is None else newest.astimezone(dt.UTC).date()


def cutoff_date(lake: Path, table: str, before: dt.date | None, today: dt.date | None = None) -> dt.date:
    today = today or dt.datetime.now(dt.UTC).date()
    return min(before or watermark_date(lake, table) or today, today)


def _retrying(what: str, action: Callable[[], dict]) -> dict:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except CommitFailedError as exc:
            if attempt == ATTEMPTS:
                raise
            log.info("%s: commit conflict (%s), again", what, exc)
            time.sleep(0.1 * attempt)
    return {}


def _optimize(table: DeltaTable, name: str, filters: list[tuple[str, str, str]], target: int) -> dict:
    def run() -> dict:
        table.update_incremental()
        return table.optimize.compact(
            partition_filters=filters,  # type: ignore[arg-type]
            target_size=target,
            writer_properties=delta.compacted_properties(TABLES[name]),
        )

    return _retrying(f"optimize {name}", run)


def compact(
    lake: str | Path, table: str = "ohlc", before: dt.date | None = None, *, in_day: bool = False
) -> CompactionReport:
    """OPTIMIZE `table`'s closed partitions (dates before the cutoff), and with `in_day` its open ones."""
    started = time.perf_counter()
    lake = Path(lake).resolve()
    cutoff = cutoff_date(lake, table, before)
    target = delta.open_table(lake, table)
    partitions = removed = added = 0
    if target is not None:
        day = cutoff.isoformat()
        runs = [([("date", "<", day)], CLOSED_TARGET_BYTES)]
        if in_day:
            runs.append(([("date", ">=", day)], OPEN_TARGET_BYTES))
        for filters, size in runs:
            metrics = _optimize(target, table, filters, size)
            partitions += int(metrics.get("partitionsOptimized", 0))
            removed += int(metrics.get("numFilesRemoved", 0))
            added += int(metrics.get("numFilesAdded", 0))
    report = CompactionReport(table, cutoff, partitions, removed, added, time.perf_counter() - started)
    log.info("optimize table=%s partitions=%d files=%d->%d cutoff=%s in %.1fs",
             table, partitions, removed, added, cutoff, report.seconds)  # fmt: skip
    return report


def vacuum_hours(grace_s: float) -> int:
    """delta-rs vacuums by whole hours: a grace period rounds up (0 only when asked for 0)."""
    return 0 if grace_s <= 0 else math.ceil(grace_s / 3600)


def vacuum(
    lake: str | Path,
    table: str,
    older_than: dt.timedelta | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    today: dt.date | None = None,
) -> VacuumReport:
    """DELETE partitions older than `older_than`, then VACUUM files no reader needs any more."""
    target = delta.open_table(Path(lake).resolve(), table)
    if target is None:
        return VacuumReport(table, 0, 0)
    retired = 0
    if older_than is not None:
        oldest_kept = ((today or dt.datetime.now(dt.UTC).date()) - older_than).isoformat()
        actions = delta.add_actions(target)
        keys = [f"partition.{c}" for c in target.metadata().partition_columns]
        partitions = set(zip(*(actions.column(k).to_pylist() for k in keys), strict=True))
        old = {p for p in partitions if str(p[keys.index("partition.date")]) < oldest_kept}
        if old:
            _retrying(f"retention {table}", lambda: target.delete(f"date < '{oldest_kept}'"))
            retired = len(old)
    hours = vacuum_hours(grace_s)
    # Full mode also deletes files no commit ever named (a batch or an OPTIMIZE killed before its
    # commit), by their age: never younger than ORPHAN_HOURS, as the job's next file may be
    # one being written right now. Lite mode deletes only what the log removed.
    deleted = target.vacuum(
        retention_hours=max(hours, ORPHAN_HOURS), dry_run=False, enforce_retention_duration=False, full=True
    )
    if hours < ORPHAN_HOURS:
        deleted += target.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
    log.info("vacuum table=%s retired=%d deleted=%d", table, retired, len(deleted))
    return VacuumReport(table, retired, len(deleted))


def tidy_log(lake: Path, table: str) -> int:
    """A checkpoint at the newest version, then delete expired commits; returns log files left."""
    target = delta.open_table(lake, table)
    if target is None:
        return 0
    wanted = delta.LogSettings.from_settings().properties()
    config = target.metadata().configuration
    if any(config.get(k) != v for k, v in wanted.items()):  # the settings changed since the table was made
        target.alter.set_table_properties(wanted)
    try:
        target.create_checkpoint()
    except DeltaError as exc:  # a checkpoint of that version exists already (written by a commit's hook)
        log.debug("checkpoint %s: %s", table, exc)
    target.cleanup_metadata()
    return sum(1 for _ in (lake / table / delta.LOG_DIR).iterdir())


def human(span: dt.timedelta) -> str:
    """A duration as people write it here: 30d, 12h, 5m, 45s."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def maintain_once(
    lake: Path,
    retention: dt.timedelta | None,
    grace_s: float,
    say: Callable[[str], None],
    table_retention: dict[str, dt.timedelta] | None = None,
) -> int:
    """One pass over every table; returns the number of actions taken. `table_retention`: a
    table's own retention instead of `retention` (LAKE_TRADES_RETENTION for trades)."""
    actions = 0
    delta.refuse_old_format(lake)
    for table in TABLES:
        if not delta.is_table(lake, table):
            continue
        try:
            c = compact(lake, table, in_day=True)
        except CommitFailedError as exc:
            say(f"optimize {table}: skipped, {str(exc).splitlines()[0]}; next pass")
            continue
        if c.partitions:
            actions += 1
            say(f"optimize {table}: {c.partitions} partitions, {c.files_before:,} files -> {c.files_after:,} "
                f"in {c.seconds:.1f}s")  # fmt: skip
        kept = (table_retention or {}).get(table, retention)
        v = vacuum(lake, table, kept, grace_s=grace_s)
        if v.retired_partitions:
            actions += 1
            assert kept is not None
            say(f"retire {table}: {v.retired_partitions} partitions older than {human(kept)}")
        if v.deleted_files:
            actions += 1
            say(f"vacuum {table}: {v.deleted_files:,} files deleted")
        tidy_log(lake, table)
    return actions


def run(
    lake: Path,
    every: dt.timedelta | None,
    retention: dt.timedelta | None,
    grace: dt.timedelta,
    out: TextIO,
    table_retention: dict[str, dt.timedelta] | None = None,
) -> int:
    """Maintain `lake` once, or every `every` until interrupted; exit status."""

    def say(line: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        print(f"{stamp} {line}", file=out, flush=True)
        log.info(line)

    try:
        with exclusive(lake):
            kept = f"the last {human(retention)}" if retention else "everything (no LAKE_RETENTION)"
            kept += "".join(f", {t} {human(r)}" for t, r in (table_retention or {}).items())
            say(f"maintaining {lake} {'every ' + human(every) if every else 'once'}: keeping {kept}, "
                f"vacuuming files unused for {human(grace)}")  # fmt: skip
            while True:
                started = time.monotonic()
                if not maintain_once(lake, retention, grace.total_seconds(), say, table_retention) and not every:
                    say("nothing to do")
                if every is None:
                    return 0
                time.sleep(max(0.0, every.total_seconds() - (time.monotonic() - started)))
    except Busy as exc:
        print(f"maintain: {exc}; leaving the lake to it", file=out, flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
