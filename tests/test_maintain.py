"""`python -m lake maintain`: beside the real job, killed mid-pass, twice at once, and retention."""

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
import pytest

import lake
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.synth import synth_trades
from lake.maintenance import exclusive, maintain_once
from lake.manifest import live_paths, read_manifest
from lake.settings import REPO_ROOT
from tests.conftest import job_args, start_job, stop_job
from tests.kafka_helpers import fresh_topics
from tests.reference import reference_bars
from tests.test_in_day_compaction import JobWriter

HOUR = dt.datetime(2024, 5, 6, 11, 0, tzinfo=dt.UTC)


def _maintain(lake_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _all(lake_dir: Path, where: str = "true") -> list[tuple[Any, ...]]:
    return lake.connect(lake_dir).sql(f"SELECT * FROM ohlc WHERE {where} ORDER BY ALL").fetchall()


@pytest.mark.integration
def test_maintain_every_few_seconds_while_the_job_writes(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    start_ms = int((HOUR - dt.timedelta(seconds=50)).timestamp() * 1000)  # 10:59:10 .. 11:00:50
    tape = list(synth_trades(40, 2, start_ms=start_ms, duration_s=100, seed=5))
    expected = reference_bars(tape)
    lake_dir = tmp_path / "lake"
    job = start_job(*job_args(kafka, settings, lake_dir, tmp_path / "checkpoints", "0 seconds"), capture=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(job.stdout or []), daemon=True).start()
    # Grace 5 s: a reader opened before a pass may still read the files it replaced (a 0 s grace
    # deletes them under the test's own readers).
    maintainer = _maintain(lake_dir, "--every", "2s", "--grace", "5s")
    closed = "window_start < TIMESTAMPTZ '2024-05-06 11:00:00+00'"
    try:
        deadline = time.monotonic() + 180
        while not any("query started name=ohlc" in line for line in output):
            assert job.poll() is None and time.monotonic() < deadline, "".join(output)[-3000:]
            time.sleep(0.5)
        sender = threading.Thread(target=_publish, args=(settings, tape))
        sender.start()  # 100 s of trades at 5x: about 20 s of batches, each a file per symbol
        seen_closed: list[tuple[Any, ...]] | None = None
        last = reads = 0
        while sender.is_alive() or len(_all(lake_dir)) < len(expected):
            assert job.poll() is None and maintainer.poll() is None and time.monotonic() < deadline + 120
            rows = _all(lake_dir)
            assert len(rows) >= last  # today only grows
            last = len(rows)
            hour10 = [r for r in rows if r[2] < HOUR]
            if seen_closed is None and len(hour10) == int((expected["window_start"] < HOUR).sum()):
                seen_closed = hour10  # 10:59 is complete: from now on it reads the same
            elif seen_closed is not None:
                assert hour10 == seen_closed
            reads += 1
            time.sleep(0.2)
        sender.join()
        time.sleep(5)  # a pass or two more over the finished lake
    finally:
        stop_job(job)
        os.killpg(maintainer.pid, signal.SIGTERM)
        log = maintainer.communicate(timeout=30)[0]
    assert seen_closed is not None and reads > 10
    assert "compact ohlc:" in log and "delete ohlc:" in log, log
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
    for symbol in sorted(set(expected["symbol"])):  # two hours' files, plus what the job wrote after the last pass
        names = [Path(p).name for p in live_paths(lake_dir / "ohlc") if f"symbol={symbol}" in p]
        assert sum(n.startswith("part-h") for n in names) == 2, names


def _publish(settings: Any, records: list[dict[str, Any]]) -> None:
    with Publisher(settings) as publisher:
        replay(records, publisher, settings.kafka.topic, speed=5.0, closing_heartbeat_after_ms=6000)


def test_kill_9_mid_pass_leaves_the_lake_as_it_was_and_the_next_pass_finishes(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    writer = JobWriter(lake_dir)
    writer.minutes(HOUR - dt.timedelta(hours=2), 240)  # 09:00 .. 13:00, a file per symbol per minute
    before = _all(lake_dir)
    proc = _maintain(lake_dir)
    compacted = lake_dir / "ohlc" / "_compacted"
    while not (compacted.exists() and any(compacted.rglob("*.parquet*"))):  # mid-pass: files, no manifest yet
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _all(lake_dir) == before
    done = subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True, check=True
    )
    assert "compact ohlc:" in done.stdout
    assert _all(lake_dir) == before
    assert len(live_paths(lake_dir / "ohlc")) == 2  # a closed day: one file per symbol


def test_a_second_maintainer_says_so_and_leaves(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    JobWriter(lake_dir).minutes(HOUR, 5)
    with exclusive(lake_dir):
        other = subprocess.run(
            [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True
        )
        assert other.returncode == 0 and f"held by pid {os.getpid()}" in other.stdout, other.stdout
        assert read_manifest(lake_dir / "ohlc").version == 0  # it did nothing
    again = subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), "maintain"], capture_output=True, text=True
    )
    assert again.returncode == 0 and "compact ohlc: 2 partitions" in again.stdout, again.stdout


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
    maintain_once(lake_dir, dt.timedelta(days=2), 0, lines.append)  # grace over: the replaced files go
    assert any(line.startswith("delete ohlc:") for line in lines), lines
    assert _all(lake_dir) == kept
