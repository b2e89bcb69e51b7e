"""`python -m lake maintain`: keep a live lake compact, within its retention, and tidy.

Each pass, for every table: compact (closed days into one file per partition, today's
partitions by hour: `lake.compaction`), then vacuum (retire partitions older than the
retention, delete files replaced longer ago than the grace period). One line per action;
nothing when there was nothing to do. With `every`, passes repeat until interrupted.

One maintainer at a time: a pass holds an exclusive lock on `<lake>/_maintain.lock`; a
second process finds it held, says so and exits 0. A maintainer killed mid-pass leaves the
lake as it was (a compaction commits by one manifest link), and the next pass does the work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from lake.compaction import compact, vacuum
from lake.manifest import ManifestConflict
from lake.tables import TABLES

log = logging.getLogger("lake.maintenance")

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


def human(span: dt.timedelta) -> str:
    """A duration as people write it here: 30d, 12h, 5m, 45s."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def maintain_once(lake: Path, retention: dt.timedelta | None, grace_s: float, say: Callable[[str], None]) -> int:
    """One pass over every table; returns the number of actions taken."""
    actions = 0
    for table in TABLES:
        if not (lake / table).is_dir():
            continue
        try:
            c = compact(lake, table, in_day=True, progress=False)
        except ManifestConflict as exc:  # a `python -m lake compact` ran meanwhile: next pass
            say(f"compact {table}: skipped, {exc}")
            continue
        if c.partitions:
            actions += 1
            say(
                f"compact {table}: {c.partitions} partitions, {c.files_before:,} files -> {c.files_after:,}, "
                f"{c.rows:,} rows in {c.seconds:.1f}s"
            )
        v = vacuum(lake, table, retention, grace_s=grace_s)
        if v.retired_partitions:
            actions += 1
            assert retention is not None
            say(f"retire {table}: {v.retired_partitions} partitions older than {human(retention)}")
        if v.deleted_files:
            actions += 1
            say(f"delete {table}: {v.deleted_files:,} replaced files, {v.deleted_bytes / 1e6:.1f} MB")
    return actions


def run(
    lake: Path,
    every: dt.timedelta | None,
    retention: dt.timedelta | None,
    grace: dt.timedelta,
    out: TextIO,
) -> int:
    """Maintain `lake` once, or every `every` until interrupted; exit status."""

    def say(line: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        print(f"{stamp} {line}", file=out, flush=True)
        log.info(line)

    try:
        with exclusive(lake):
            kept = f"the last {human(retention)}" if retention else "everything (no LAKE_RETENTION)"
            say(
                f"maintaining {lake} {'every ' + human(every) if every else 'once'}: keeping {kept}, "
                f"deleting replaced files after {human(grace)}"
            )
            while True:
                started = time.monotonic()
                if not maintain_once(lake, retention, grace.total_seconds(), say) and not every:
                    say("nothing to do")
                if every is None:
                    return 0
                time.sleep(max(0.0, every.total_seconds() - (time.monotonic() - started)))
    except Busy as exc:
        print(f"maintain: {exc}; leaving the lake to it", file=out, flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
