"""kill -9 mid-stream, once at a random batch, then restart from the checkpoint: the lake equals an uninterrupted run.

And late rows: a trade older than the watermark is counted per batch in lake/_progress, and
every input row is in exactly one of bars, rejects, late, duplicates or heartbeats.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

import lake
from ingest.tape import read_tape, write_tape
from tests.support.data import SAMPLE
from tests.support.job import (
    job_failure,
    progress_lines,
    replay,
    run_job,
    small_batch_args,
    snapshot,
    start_job,
)
from tests.support.kafka_helpers import consume, fresh_topics
from tests.support.lake_checks import assert_bars_and_volatility
from tests.support.messy_tape import messy_tape, with_late_trades
from tests.support.reference import reference_bars, valid_trades

pytestmark = pytest.mark.integration


def test_kill_9_mid_stream_then_restart_equals_an_uninterrupted_run(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    tape, _ = messy_tape(list(read_tape(SAMPLE)))
    tape = with_late_trades(tape, at=(4500, 7800, 10800, 13900), lag_ms=150_000)  # late by over two batches
    write_tape(tmp_path / "tape.ndjson", tape)
    replay(tmp_path / "tape.ndjson", kafka, settings.kafka.topic)

    clean = tmp_path / "clean"
    job = run_job(*small_batch_args(kafka, settings, clean))
    assert job.returncode == 0, job_failure(job)
    expected = snapshot(clean / "lake")
    assert len(expected["ohlc"]) > 600 and len(expected["volatility"]) == len(expected["ohlc"])
    con = lake.connect(clean / "lake")
    assert con.sql("SELECT count(*) FROM ohlc WHERE revision > 0").fetchall()[0][0] >= 4  # revised by late trades
    # lake/trades marks late exactly the trades Spark and the sink found late
    dropped = con.sql("SELECT sum(rows_dropped_by_watermark) FROM progress").fetchall()[0][0]
    assert con.sql("SELECT count(*) FROM trades WHERE late").fetchall()[0][0] == dropped == 12

    crashed = tmp_path / "crashed"
    rng = random.Random(11)
    kills = 0
    # One kill at a random point (a crash between the tables of one batch is covered
    # deterministically in test_lake_sink.py; `make bench` runs bench/faults.py's 20 kills).
    for after_batches in (rng.randint(2, 4),):  # kill once the bars query has committed this many batches, plus a bit
        proc = start_job(*small_batch_args(kafka, settings, crashed))
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if progress_lines(crashed / "lake", "ohlc") >= after_batches:
                break
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside the next batch
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills == 1, "the job finished before it could be killed"

    job = run_job(*small_batch_args(kafka, settings, crashed))
    assert job.returncode == 0, job_failure(job)
    assert snapshot(crashed / "lake") == expected


def test_late_rows_are_counted_and_every_row_is_accounted_for(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    records = [r for r in read_tape(SAMPLE) if r["symbol"] == "BTCUSDT"]
    first = records[:3000]
    end = first[-1]["timestamp"]
    # The first replay's closing heartbeat moved the watermark to end + 1 s, so the second
    # part starts after that; in it, 20 trades stamped a minute before `end` are late.
    second = [r for r in records[3000:] if r["timestamp"] > end + 6000][:1000]
    late = [{**r, "trade_id": 10**12 + i, "timestamp": end - 60_000 + i} for i, r in enumerate(second[:19])]
    # and one that is the last trade of its second, at a new price: it changes that bar's close,
    # so the volatility rows after it change too
    closing = end - 30_000 - (end - 30_000) % 1000 + 999
    late.append(
        {
            **second[19],
            "trade_id": 10**12 + 19,
            "timestamp": closing,
            "price": f"{float(second[19]['price']) + 7.13:.2f}",
        }
    )
    duplicates = [dict(r) for r in second[100:130]]
    invalid = [{**second[0], "trade_id": 10**12 + 99, "price": "-1"}]
    batches = [first, late + second + duplicates + invalid]
    work = tmp_path / "job"
    heartbeats = 0
    for n, batch in enumerate(batches):
        write_tape(tmp_path / f"part{n}.ndjson", batch)
        replay(tmp_path / f"part{n}.ndjson", kafka, settings.kafka.topic)
        heartbeats += 1  # each replay closes with one heartbeat
        job = run_job(*small_batch_args(kafka, settings, work))
        assert job.returncode == 0, job_failure(job)

    con = lake.connect(work / "lake")
    progress = con.sql(
        "SELECT sum(input_rows), sum(rows_dropped_by_watermark), sum(duplicates_dropped) "
        "FROM progress WHERE query = 'ohlc'"
    ).fetchall()[0]
    input_rows, dropped_late, dropped_dups = (int(x) for x in progress)
    in_bars = con.sql("SELECT sum(trade_count) FROM ohlc").fetchall()[0][0]
    rejects = con.sql("SELECT count(*) FROM rejects").fetchall()[0][0]
    sent = sum(len(b) for b in batches) + heartbeats
    assert (input_rows, dropped_late, dropped_dups, rejects) == (sent, len(late), len(duplicates), len(invalid))
    # every input row is in exactly one of: the on-time bars, rejects, late, duplicates, heartbeats
    assert input_rows == in_bars - len(late) + rejects + dropped_late + dropped_dups + heartbeats
    # lake/trades holds every accepted trade once, the late ones too, and marks those late.
    stored = con.sql("SELECT trade_id, late FROM trades").fetchall()
    everything = [r for b in batches for r in b]
    assert len(stored) == len(valid_trades(everything))
    assert sorted(i for i, is_late in stored if is_late) == sorted(r["trade_id"] for r in late)
    # The late trades then revised their bars from lake/trades: the bars and volatility are the
    # reference over every trade, the late ones included, and the revised bars say so.
    assert in_bars == len(valid_trades(everything))
    assert_bars_and_volatility(con, reference_bars(everything))
    late_windows = {r["timestamp"] // 1000 * 1000 for r in late}
    revised = con.sql("SELECT epoch_ms(window_start), revision, revised_at IS NOT NULL FROM ohlc WHERE revision > 0")
    assert {(t, True) for t in late_windows} == {(t, has_time) for t, _, has_time in revised.fetchall()}
    # volatility rows are revised where a close changed (the second late window's and those after
    # it, within the longest window); the first late window's close did not change
    revised_vol = con.sql("SELECT min(epoch_ms(window_start)) FROM volatility WHERE revision > 0").fetchall()[0][0]
    assert revised_vol == closing - 999
    # and the live topic carried them: each revised bar, final, as the lake now holds it
    sent_revisions = [c.value for c in consume(kafka, settings.kafka.live_bars_topic)]  # JSON: decimals as strings
    lake_revised = {
        (int(r[0]), int(r[1]), str(r[2]), int(r[3]))
        for r in con.sql(
            "SELECT epoch_ms(window_start), revision, close, trade_count FROM ohlc WHERE revision > 0"
        ).fetchall()
    }
    assert all(m["final"] for m in sent_revisions)
    assert {
        (m["window_start"], m["revision"], str(m["close"]), m["trade_count"]) for m in sent_revisions
    } == lake_revised
    lines = [json.loads(line) for p in (work / "lake" / "_progress").glob("date=*/*.ndjson") for line in p.open()]
    assert {rec["query"] for rec in lines} == {"ohlc"}  # one query writes every table
