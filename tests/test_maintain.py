"""`python -m lake maintain` (Delta's OPTIMIZE, DELETE, VACUUM, checkpoints): beside the real job,
killed mid-OPTIMIZE, two at once, and retention."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from core.schema import OHLC, OHLC_TABLE, to_arrow
from core.settings import REPO_ROOT
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.synth import synth_trades
from lake import delta
from lake.maintenance import exclusive, maintain_once
from tests.support.job import job_args, start_job, stop_job
from tests.support.kafka_helpers import fresh_topics
from tests.support.lake_builder import ohlc_rows
from tests.support.reference import reference_bars

HOUR = dt.datetime(2024, 5, 6, 11, 0, tzinfo=dt.UTC)
SYMBOLS = ("AAAUSD", "BBBUSD")


class JobWriter:
    """Batches as the stream job's sink commits them: one commit per batch, a file per symbol."""

    def __init__(self, lake_dir: Path) -> None:
        self.table = delta.ensure_table(lake_dir, "ohlc", OHLC_TABLE)
        self.batch = 0

    def minutes(self, start: dt.datetime, minutes: int) -> None:
        for m in range(minutes):
            t = start + dt.timedelta(minutes=m)
            rows = [r for s in SYMBOLS for r in ohlc_rows(s, t, 60, price=100.0 + m)]
            assert delta.append(self.table, pa.Table.from_pylist(rows, schema=to_arrow(OHLC)), txn=("job", self.batch))
            self.batch += 1


def _maintain(lake_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _all(lake_dir: Path, where: str = "true") -> list[tuple[Any, ...]]:
    return lake.connect(lake_dir).sql(f"SELECT * FROM ohlc WHERE {where} ORDER BY ALL").fetchall()


def _files(lake_dir: Path) -> list[str]:
    table = delta.open_table(lake_dir, "ohlc")
    assert table is not None
    return table.file_uris()


def _old_orphan(lake_dir: Path) -> Path:
    """A complete file no commit names, two hours old: what a batch killed long ago leaves."""
    folder = lake_dir / "ohlc" / "symbol=AAAUSD" / "date=2024-05-06"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000-orphan-c000.zstd.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    old = time.time() - 7200
    os.utime(path, (old, old))
    return path


@pytest.mark.integration
def test_maintain_every_few_seconds_while_the_job_writes(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    start_ms = int((HOUR - dt.timedelta(seconds=50)).timestamp() * 1000)  # 10:59:10 .. 11:00:50
    tape = list(synth_trades(40, 2, start_ms=start_ms, duration_s=100, seed=5))
    expected = reference_bars(tape)
    lake_dir = tmp_path / "lake"
    # At most 200 trades a batch (a second of the sender's): however slow the machine, the tape
    # takes twenty commits or more, each read while maintenance runs.
    args = job_args(kafka, settings, lake_dir, tmp_path / "checkpoints", "0 seconds", max_offsets=200)
    job = start_job(*args, capture=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(job.stdout or []), daemon=True).start()
    maintainer: subprocess.Popen[str] | None = None
    closed = "window_start < TIMESTAMPTZ '2024-05-06 11:00:00+00'"
    try:
        deadline = time.monotonic() + 180
        while not any("query started name=ohlc" in line for line in output):
            assert job.poll() is None and time.monotonic() < deadline, "".join(output)[-3000:]
            time.sleep(0.5)
        sender = threading.Thread(target=_publish, args=(settings, tape))
        sender.start()  # 100 s of trades at 5x: about 20 s of batches, each a commit with a file per symbol
        while not delta.is_table(lake_dir, "ohlc"):
            time.sleep(0.2)
        orphan = _old_orphan(lake_dir)
        # The default grace (1 h): readers opened before a pass keep reading the files it replaced.
        maintainer = _maintain(lake_dir, "--every", "2s")
        seen_closed: list[tuple[Any, ...]] | None = None
        last = reads = 0
        while True:  # the read that finds the lake complete is checked too (one late batch may close 10:59)
            assert job.poll() is None and maintainer.poll() is None and time.monotonic() < deadline + 120
            sending = sender.is_alive()
            rows = _all(lake_dir)
            assert len(rows) >= last  # today only grows
            last = len(rows)
            hour10 = [r for r in rows if r[2] < HOUR]
            if seen_closed is None and len(hour10) == int((expected["window_start"] < HOUR).sum()):
                seen_closed = hour10  # 10:59 is complete: from now on it reads the same
            elif seen_closed is not None:
                assert hour10 == seen_closed
            reads += 1
            if not sending and len(rows) >= len(expected):
                break
            time.sleep(0.2)
        sender.join()
        time.sleep(5)  # a pass or two more over the finished lake
    finally:
        stop_job(job)
        if maintainer is not None:
            os.killpg(maintainer.pid, signal.SIGTERM)
    log = maintainer.communicate(timeout=30)[0]
    assert seen_closed is not None and reads > 10
    assert "optimize ohlc:" in log and "vacuum ohlc: 1 files deleted" in log, log
    assert not orphan.exists()
    got = (
        lake.connect(lake_dir)
        .sql("SELECT window_start, open, close, volume, trade_count FROM ohlc ORDER BY symbol, window_start")
        .fetchall()
    )
    want = expected.sort_values(["symbol", "window_start"])
    assert [pd.Timestamp(r[0]) for r in got] == list(want["window_start"])
    assert [r[1:] for r in got] == list(
        zip(want["open"], want["close"], want["volume"], want["trade_count"], strict=True)
    )
    assert _all(lake_dir, closed) == seen_closed
    # Both committed to the one log, the maintainer while the job ran (none of the job's commits
    # lost: the rows above equal the reference). How they interleave depends on the machine's load.
    ops = [h["operation"] for h in delta.open_table(lake_dir, "ohlc").history()]  # type: ignore[union-attr]
    assert "OPTIMIZE" in ops and "WRITE" in ops, ops


def _publish(settings: Any, records: list[dict[str, Any]]) -> None:
    with Publisher(settings) as publisher:
        replay(records, publisher, settings.kafka.topic, speed=5.0, closing_heartbeat_after_ms=6000)


def test_kill_9_mid_optimize_leaves_the_table_as_it_was_and_the_next_pass_finishes(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    JobWriter(lake_dir).minutes(HOUR - dt.timedelta(hours=2), 240)  # 09:00 .. 13:00, a file per symbol per minute
    before, files = _all(lake_dir), set(_files(lake_dir))
    version = delta.open_table(lake_dir, "ohlc").version()  # type: ignore[union-attr]
    proc = _maintain(lake_dir)
    while not {str(p) for p in (lake_dir / "ohlc").rglob("*.parquet")} - files:  # new files, no commit yet
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert delta.open_table(lake_dir, "ohlc").version() == version  # type: ignore[union-attr]
    assert set(_files(lake_dir)) == files and _all(lake_dir) == before
    done = subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True, check=True
    )
    assert "optimize ohlc:" in done.stdout
    assert _all(lake_dir) == before
    assert len(_files(lake_dir)) == 2  # a closed day: one file per symbol


def test_a_second_maintainer_says_so_and_leaves(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    JobWriter(lake_dir).minutes(HOUR, 5)
    version = delta.open_table(lake_dir, "ohlc").version()  # type: ignore[union-attr]
    with exclusive(lake_dir):
        other = subprocess.run(
            [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True
        )
        assert other.returncode == 0 and f"held by pid {os.getpid()}" in other.stdout, other.stdout
        assert delta.open_table(lake_dir, "ohlc").version() == version  # type: ignore[union-attr]
    again = subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True
    )
    assert again.returncode == 0 and "optimize ohlc: 2 partitions" in again.stdout, again.stdout


def test_why_the_lock_two_optimizes_of_one_version_both_commit_in_delta_rs(tmp_path: Path) -> None:
    """delta-rs lets two OPTIMIZEs that read the same version both commit (delta-rs #3982): the
    rows are then there twice. If this ever fails, delta-rs refuses the second, and the lock in
    lake.maintenance could go."""
    lake_dir = tmp_path / "lake"
    JobWriter(lake_dir).minutes(HOUR, 3)
    rows = len(_all(lake_dir))
    first, second = delta.open_table(lake_dir, "ohlc"), delta.open_table(lake_dir, "ohlc")
    assert first is not None and second is not None
    first.optimize.compact()
    second.optimize.compact()  # read the version before the first's commit
    assert len(_all(lake_dir)) == 2 * rows


def test_retention_keeps_its_window_and_grace_keeps_what_a_reader_may_still_read(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    today = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    writer = JobWriter(lake_dir)
    for days_ago in (3, 1, 0):
        writer.minutes(today - dt.timedelta(days=days_ago), 3)
    lines: list[str] = []
    reader = lake.connect(lake_dir)  # opened before the pass: it holds the small files' names
    maintain_once(lake_dir, dt.timedelta(days=2), 3600, lines.append)
    assert any(line.startswith("retire ohlc: 2 partitions") for line in lines), lines
    kept = _all(lake_dir)
    assert {r[2].date() for r in kept} == {(today - dt.timedelta(days=1)).date(), today.date()}
    assert len(reader.sql("SELECT * FROM ohlc").fetchall()) == 2 * 9 * 60  # within grace: still readable
    history = delta.open_table(lake_dir, "ohlc").history()  # type: ignore[union-attr]
    assert any(h["operation"] == "DELETE" for h in history)
    maintain_once(lake_dir, dt.timedelta(days=2), 0, lines.append)  # grace over: the replaced files go
    assert any(line.startswith("vacuum ohlc:") for line in lines), lines
    assert _all(lake_dir) == kept


def test_the_trades_table_keeps_its_own_retention(tmp_path: Path) -> None:
    """LAKE_TRADES_RETENTION: ticks go after a day here while the bars keep three."""
    from core.schema import TRADES

    lake_dir = tmp_path / "lake"
    today = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    writer = JobWriter(lake_dir)
    ticks = []
    for days_ago in (2, 0):
        at = today - dt.timedelta(days=days_ago)
        writer.minutes(at, 1)
        ticks.append({
            "exchange": "binance", "symbol": "BTCUSDT", "trade_id": days_ago, "price": 1, "quantity": 1,
            "event_time": at, "is_buyer_maker": True, "ingest_time": at, "kafka_partition": 0,
            "kafka_offset": days_ago, "late": False, "date": at.date(),
        })  # fmt: skip
    delta.append_rows(lake_dir, "trades", pa.Table.from_pylist(ticks, schema=to_arrow(TRADES)), TRADES)
    lines: list[str] = []
    maintain_once(lake_dir, dt.timedelta(days=3), 0, lines.append, {"trades": dt.timedelta(days=1)})
    assert any(line.startswith("retire trades: 1 partitions older than 1d") for line in lines), lines
    assert not any(line.startswith("retire ohlc") for line in lines), lines
    con = lake.connect(lake_dir)
    assert con.sql("SELECT trade_id FROM trades").fetchall() == [(0,)]
    assert {r[2].date() for r in _all(lake_dir)} == {(today - dt.timedelta(days=2)).date(), today.date()}
