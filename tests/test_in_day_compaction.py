"""Compaction of today's partitions by hour, with the stream job's own writer: readers see the
same rows throughout, today's partition stays at most one file per hour plus what came since,
and the sink log keeps only the part not yet compacted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

import lake
from lake import writer
from lake.commit_log import LOG_DIR, committed_relative
from lake.compaction import compact, vacuum
from lake.manifest import live_paths, read_manifest
from lake.schema import OHLC, to_arrow
from tests.lake_builder import ohlc_rows

DAY = dt.date(2026, 3, 4)
T0 = dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC)
SYMBOLS = ("AAAUSD", "BBBUSD")


class JobWriter:
    """Batches as the stream job's sink writes them: one file per symbol per batch, named after it."""

    def __init__(self, lake_dir: Path) -> None:
        self.lake_dir = lake_dir
        self.batch = 0

    def minutes(self, start: dt.datetime, minutes: int) -> None:
        for m in range(minutes):
            t = start + dt.timedelta(minutes=m)
            rows = [r for s in SYMBOLS for r in ohlc_rows(s, t, 60, price=100.0 + m)]
            table = pa.Table.from_pylist(rows, schema=to_arrow(OHLC))
            assert writer.write_batch(self.lake_dir, "ohlc", self.batch, table, OHLC, "window_start")
            self.batch += 1


def _rows(lake_dir: Path) -> list[tuple[Any, ...]]:
    return sorted(lake.connect(lake_dir).sql("SELECT * FROM ohlc").fetchall(), key=repr)


def _files(lake_dir: Path, symbol: str) -> list[str]:
    return [p for p in live_paths(lake_dir / "ohlc") if f"/symbol={symbol}/" in p]


def test_today_is_compacted_by_hour_then_the_closed_day_into_one_file(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    job = JobWriter(lake_dir)
    job.minutes(T0, 150)  # 10:30 .. 13:00, a file per symbol per minute
    before = _rows(lake_dir)
    assert len(_files(lake_dir, "AAAUSD")) == 150

    report = compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    assert report.partitions == 2 and report.rows == len(before)
    assert _rows(lake_dir) == before
    files = _files(lake_dir, "AAAUSD")
    assert [Path(f).name[:8] for f in files] == ["part-h10", "part-h11", "part-h12"]

    job.minutes(T0 + dt.timedelta(minutes=150), 40)  # 13:00 .. 13:40, while readers read
    grown = _rows(lake_dir)
    assert set(before) < set(grown) and len(grown) == len(before) + 2 * 40 * 60
    assert len(_files(lake_dir, "AAAUSD")) == 3 + 40

    compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    assert _rows(lake_dir) == grown
    assert [Path(f).name[:8] for f in _files(lake_dir, "AAAUSD")] == ["part-h10", "part-h11", "part-h12", "part-h13"]

    # The day closes: one time-sorted file per partition.
    compact(lake_dir, "ohlc", before=DAY + dt.timedelta(days=1), in_day=True, progress=False)
    assert _rows(lake_dir) == grown
    (day_file,) = _files(lake_dir, "AAAUSD")
    starts = lake.connect(lake_dir).sql(f"SELECT window_start FROM read_parquet('{day_file}')").fetchall()
    assert starts == sorted(starts) and len(starts) == 190 * 60

    vacuum(lake_dir, "ohlc", grace_s=0)  # every replaced file goes; the lake reads the same
    assert _rows(lake_dir) == grown
    on_disk = sorted(p.name.split("-")[0] for p in (lake_dir / "ohlc").rglob("*.parquet"))
    assert on_disk == ["newest", "newest", "part", "part"]  # per symbol: the day, and its newest rows


def test_the_sink_log_keeps_only_what_is_not_compacted(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    job = JobWriter(lake_dir)
    job.minutes(T0, 25)
    compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    sealed = read_manifest(lake_dir / "ohlc").partitions["symbol=AAAUSD/date=2026-03-04"].sealed_batch
    assert sealed == 24
    job.minutes(T0 + dt.timedelta(minutes=25), 10)  # batches 25..34: batch 29 compacts the log
    assert (lake_dir / "ohlc" / LOG_DIR / "29.compact").exists()
    listed = committed_relative(lake_dir / "ohlc")
    assert len(listed) == 2 * 10  # the batches since the compaction, not the 25 before
    assert len(_rows(lake_dir)) == 2 * 35 * 60


def test_latest_bars_reads_the_newest_rows_summary_and_stays_exact(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    job = JobWriter(lake_dir)
    brute = (
        "SELECT * FROM ohlc QUALIFY row_number() OVER (PARTITION BY exchange, symbol ORDER BY window_start DESC) = 1 "
        "ORDER BY ALL"
    )

    def check() -> None:
        con = lake.connect(lake_dir)
        assert con.sql("SELECT * FROM latest_bars ORDER BY ALL").fetchall() == con.sql(brute).fetchall()

    # A second exchange trades AAAUSD only in the first minutes: its newest bar is in an old hour.
    other = [{**r, "exchange": "coinbase"} for r in ohlc_rows("AAAUSD", T0, 120)]
    writer.write_batch(lake_dir, "ohlc", 0, pa.Table.from_pylist(other, schema=to_arrow(OHLC)), OHLC, "window_start")
    job.batch = 1
    job.minutes(T0 + dt.timedelta(minutes=2), 100)
    check()
    compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    check()
    job.minutes(T0 + dt.timedelta(minutes=102), 3)
    check()
    compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    check()
    compact(lake_dir, "ohlc", before=DAY + dt.timedelta(days=1), in_day=True, progress=False)
    check()
    entry = read_manifest(lake_dir / "ohlc").partitions["symbol=AAAUSD/date=2026-03-04"]
    assert entry.newest and lake.connect(lake_dir).sql("SELECT count(*) FROM latest_bars").fetchall() == [(3,)]


def test_latest_bars_opens_the_summaries_not_the_compacted_files(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    JobWriter(lake_dir).minutes(T0, 90)
    compact(lake_dir, "ohlc", before=DAY, in_day=True, progress=False)
    from lake.reader import latest_bars_sql

    sql = latest_bars_sql(lake_dir / "ohlc")
    assert sql.count("/newest-") == 2 and "/part-h" not in sql
