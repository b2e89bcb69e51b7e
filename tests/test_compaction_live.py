"""OPTIMIZE (Delta compaction) while the real stream job keeps committing today's partition.

Synthetic trades run from 23:59 on day 1 into day 2. Once the job's watermark has closed
day 1, day 1 is compacted while more day-2 trades stream in. A reader connecting again and
again sees exactly the same day-1 rows before, during and after; the finished lake equals
the pandas reference over the whole tape, with a volatility row for every bar. The job runs
as deployed: its default trigger (the next batch as soon as one ends) over a lake that starts
empty.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lake
from core.settings import Settings
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.synth import synth_trades
from lake import delta
from lake.maintenance import compact, vacuum
from tests.support.job import job_args, start_job, stop_job
from tests.support.kafka_helpers import fresh_topics
from tests.support.reference import reference_bars

pytestmark = pytest.mark.integration

DAY2 = dt.date(2024, 3, 2)
START_MS = int(dt.datetime(2024, 3, 1, 23, 59, tzinfo=dt.UTC).timestamp() * 1000)
SPLIT_MS = START_MS + 90_000  # tape A: 23:59:00 .. 00:00:30; tape B: .. 00:02:00


def _publish(settings: Settings, records: list[dict[str, Any]], speed: float, closing: bool) -> None:
    with Publisher(settings) as publisher:
        replay(
            records, publisher, settings.kafka.topic, speed=speed, closing_heartbeat_after_ms=6000 if closing else None
        )


def _rows(lake_dir: Path, where: str) -> list[tuple[Any, ...]]:
    return lake.connect(lake_dir).sql(f"SELECT * FROM ohlc WHERE {where} ORDER BY ALL").fetchall()


def _day1_files(lake_dir: Path) -> list[str]:
    """Day 1's files in the table's newest version (committed batches only)."""
    table = delta.open_table(lake_dir, "ohlc")
    return [f for f in table.file_uris() if "date=2024-03-01" in f] if table is not None else []


def _wait_for(predicate: Any, timeout: float, proc: subprocess.Popen[str], output: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "".join(output)[-3000:]
        if predicate():
            return
        time.sleep(1)
    raise AssertionError("timed out waiting for the lake")


def test_compaction_while_the_job_writes_today(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    tape = list(synth_trades(40, 2, start_ms=START_MS, duration_s=180, seed=11))
    tape_a = [r for r in tape if r["timestamp"] < SPLIT_MS]
    tape_b = [r for r in tape if r["timestamp"] >= SPLIT_MS]
    expected = reference_bars(tape)
    day1_bars = int((expected["window_start"].dt.date < DAY2).sum())
    lake_dir = tmp_path / "lake"
    proc = start_job(*job_args(kafka, settings, lake_dir, tmp_path / "checkpoints", "0 seconds"), capture=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True).start()
    try:
        # Day 1 must land in many micro-batches (many files) before it can be compacted.
        _wait_for(lambda: any("query started name=ohlc" in line for line in output), 180, proc, output)
        # In three parts, each written before the next is sent: a slow batch (a busy machine)
        # could otherwise take all of day 1 at once, leaving one file per partition.
        for lo, hi in ((0, 20_000), (20_000, 40_000), (40_000, 90_000)):
            part = [r for r in tape_a if START_MS + lo <= r["timestamp"] < START_MS + hi]
            files = len(_day1_files(lake_dir))
            _publish(settings, part, speed=8.0, closing=False)
            if hi < 90_000:
                _wait_for(lambda files=files: len(_day1_files(lake_dir)) > files, 120, proc, output)
        _wait_for(lambda: len(_rows(lake_dir, "date < DATE '2024-03-02'")) == day1_bars, 180, proc, output)
        day1 = _rows(lake_dir, "date < DATE '2024-03-02'")

        writer = threading.Thread(target=_publish, args=(settings, tape_b, 6.0, True))
        writer.start()  # ~15 s of day-2 trades arriving while day 1 is compacted
        time.sleep(3)
        files_before = len([f for f in (lake_dir / "ohlc").rglob("*.parquet") if "date=2024-03-01" in str(f)])
        report = {}
        compactor = threading.Thread(target=lambda: report.update(r=compact(lake_dir, "ohlc", before=DAY2)))
        compactor.start()
        reads = day2_counts = 0
        last_day2 = 0
        while compactor.is_alive() or writer.is_alive():
            assert _rows(lake_dir, "date < DATE '2024-03-02'") == day1
            day2 = len(_rows(lake_dir, "date >= DATE '2024-03-02'"))
            assert day2 >= last_day2  # today's partition keeps growing, never loses a bar
            day2_counts += day2 > last_day2
            last_day2 = day2
            reads += 1
        compactor.join()
        writer.join()
        assert report["r"].partitions == 2 and files_before > 2
        assert reads > 3 and day2_counts >= 1  # the job really wrote day 2 during the compaction

        _wait_for(lambda: len(_rows(lake_dir, "true")) == len(expected), 120, proc, output)
        vacuum(lake_dir, "ohlc", grace_s=0)  # the replaced day-1 files go
        volatility_rows = "SELECT count(*) = ? FROM volatility"
        _wait_for(
            lambda: lake.connect(lake_dir).execute(volatility_rows, [len(expected)]).fetchall()[0][0], 120, proc, output
        )
    finally:
        stop_job(proc)

    con = lake.connect(lake_dir)
    assert _rows(lake_dir, "date < DATE '2024-03-02'") == day1
    actual = con.sql("SELECT window_start, open, close, volume, trade_count FROM ohlc ORDER BY symbol, window_start")
    want = expected.sort_values(["symbol", "window_start"])
    got = actual.fetchall()
    assert [pd.Timestamp(r[0]) for r in got] == list(want["window_start"])
    assert [r[1:] for r in got] == list(
        zip(want["open"], want["close"], want["volume"], want["trade_count"], strict=True)
    )
    assert len(_day1_files(lake_dir)) == 2  # one file per symbol for the closed day
    history = delta.open_table(lake_dir, "ohlc").history()  # type: ignore[union-attr]
    assert [h["operation"] for h in history].count("OPTIMIZE") == 1 and not [
        h for h in history if h["operation"] == "WRITE" and h.get("operationMetrics", {}).get("num_removed_files")
    ]  # the job's commits only ever added files
