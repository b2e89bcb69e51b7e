"""Compaction and vacuum: readers see the same rows before, during and after."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import lake
from lake import compaction
from lake.compaction import compact, vacuum
from lake.manifest import Manifest, ManifestConflict, live_files, read_manifest, write_manifest
from tests.lake_builder import SinkLake, ohlc_rows

DAY1 = dt.datetime(2026, 1, 1, 23, 50, tzinfo=dt.UTC)
DAY2 = dt.date(2026, 1, 2)


def _rows(lake_dir: Path, where: str = "true") -> list[tuple[Any, ...]]:
    con = lake.connect(lake_dir)
    return sorted(con.sql(f"SELECT * FROM ohlc WHERE {where}").fetchall(), key=repr)


def _lake(tmp_path: Path, batches: int = 12) -> SinkLake:
    """Two symbols, 20 minutes across midnight of 2026-01-01, one batch per 100 seconds."""
    sink = SinkLake(tmp_path / "lake")
    for b in range(batches):
        start = DAY1 + dt.timedelta(seconds=100 * b)
        sink.write_batch(ohlc_rows("AAAUSD", start, 100) + ohlc_rows("BBBUSD", start, 100, price=50.0))
    return sink


def test_compaction_keeps_every_row_and_leaves_one_file_per_closed_partition(tmp_path: Path) -> None:
    sink = _lake(tmp_path)
    before = _rows(tmp_path / "lake")
    report = compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    assert report.partitions == 2 and report.rows == 2 * 600  # 23:50..00:00 of day 1
    assert _rows(tmp_path / "lake") == before
    files = live_files(sink.table_dir)
    day1 = [f for f in files if "date=2026-01-01" in str(f)]
    assert len(day1) == 2 and all("_compacted" in str(f) for f in day1)
    # Day 2 is not closed: its per-batch files are untouched.
    assert len([f for f in files if "date=2026-01-02" in str(f)]) == 2 * 6


def test_a_second_compaction_folds_in_files_that_arrived_later(tmp_path: Path) -> None:
    sink = _lake(tmp_path)
    compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    # A straggler file lands in a compacted partition: still visible, then folded in.
    sink.write_batch(ohlc_rows("AAAUSD", DAY1 - dt.timedelta(hours=1), 30))
    expected = _rows(tmp_path / "lake")
    assert len(expected) == 2400 + 30
    report = compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    assert report.partitions == 1
    assert _rows(tmp_path / "lake") == expected
    assert read_manifest(sink.table_dir, garbage=True).garbage  # the first compacted file awaits vacuum


def test_uncommitted_files_are_not_compacted_in(tmp_path: Path) -> None:
    sink = _lake(tmp_path)
    sink.write_batch(ohlc_rows("AAAUSD", DAY1, 5), commit=False)  # a batch that crashed
    before = _rows(tmp_path / "lake")
    compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    assert _rows(tmp_path / "lake") == before


def test_readers_see_the_same_rows_during_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader connects after every step: each new file written, each manifest committed."""
    _lake(tmp_path, batches=30)
    before = _rows(tmp_path / "lake")
    checks: list[bool] = []
    rewrite, commit = compaction._rewrite, compaction.write_manifest

    def rewrite_then_read(*args: Any) -> tuple[str, int]:
        result = rewrite(*args)
        checks.append(_rows(tmp_path / "lake") == before)  # new file on disk, not yet committed
        return result

    def commit_then_read(*args: Any) -> None:
        commit(*args)
        checks.append(_rows(tmp_path / "lake") == before)

    monkeypatch.setattr(compaction, "_rewrite", rewrite_then_read)
    monkeypatch.setattr(compaction, "write_manifest", commit_then_read)
    compact(tmp_path / "lake", "ohlc", before=dt.date(2026, 1, 3), progress=False, commit_every=1)
    assert len(checks) == 8 and all(checks)  # 4 partitions: 4 rewrites, 4 commits


def test_filters_touch_only_their_partitions(tmp_path: Path) -> None:
    sink = _lake(tmp_path)
    compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    # Corrupt every live file of BBBUSD: a query on AAAUSD must not open them.
    for f in live_files(sink.table_dir):
        if "symbol=BBBUSD" in str(f):
            f.write_bytes(b"not parquet")
    con = lake.connect(tmp_path / "lake")
    assert con.sql("SELECT count(*) FROM ohlc WHERE symbol = 'AAAUSD'").fetchall() == [(1200,)]
    with pytest.raises(Exception, match=r"(?i)parquet|magic"):
        con.sql("SELECT count(*) FROM ohlc").fetchall()


def test_vacuum_retires_old_partitions_and_deletes_replaced_files_after_grace(tmp_path: Path) -> None:
    sink = _lake(tmp_path)
    compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    replaced = [f for e in read_manifest(sink.table_dir).partitions.values() for f in e.replaces]
    assert replaced and all((sink.table_dir / f).exists() for f in replaced)
    # Within the grace period nothing a reader might hold is deleted.
    assert vacuum(tmp_path / "lake", "ohlc", grace_s=3600).deleted_files == 0
    report = vacuum(tmp_path / "lake", "ohlc", grace_s=0)
    assert report.deleted_files == len(replaced)
    assert not any((sink.table_dir / f).exists() for f in replaced)
    assert len(_rows(tmp_path / "lake")) == 2400
    # Retention: keep 0 days before 2026-01-02 -> day 1 goes, day 2 stays.
    report = vacuum(tmp_path / "lake", "ohlc", dt.timedelta(days=0), grace_s=0, today=DAY2)
    assert report.retired_partitions == 2
    assert {r[-1] for r in _rows(tmp_path / "lake")} == {DAY2}
    assert len(_rows(tmp_path / "lake")) == 2 * 600
    vacuum(tmp_path / "lake", "ohlc", grace_s=0)  # the retired files go once nobody can hold them
    assert not list((sink.table_dir / "symbol=AAAUSD" / "date=2026-01-01").glob("*.parquet"))


def test_two_writers_cannot_commit_the_same_manifest_version(tmp_path: Path) -> None:
    table = tmp_path / "lake" / "ohlc"
    write_manifest(table, Manifest(version=1))
    with pytest.raises(ManifestConflict):
        write_manifest(table, Manifest(version=1))


def test_compaction_of_an_empty_or_missing_table_does_nothing(tmp_path: Path) -> None:
    report = compact(tmp_path / "lake", "ohlc", before=DAY2, progress=False)
    assert report.partitions == 0
    assert _rows(tmp_path / "lake") == []
