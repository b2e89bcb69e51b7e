"""The demo market: loops of the real tape are the tape's bars shifted in time, never duplicates."""

from __future__ import annotations

from ingest.demo import demo_records, loop_plan
from ingest.tape import read_tape
from tests.support.data import SAMPLE
from tests.support.reference import expected_loops, reference_bars

NOW_MS = 1_796_000_000_123  # 2026-11-30


def test_two_loops_are_the_tapes_bars_shifted_and_never_duplicates() -> None:
    tape = list(read_tape(SAMPLE))
    records = list(demo_records(tape, loops=2, now_ms=lambda: NOW_MS))
    trades = [r for r in records if r["type"] == "trade"]
    assert len(trades) == 2 * len(tape)
    assert len({(r["symbol"], r["trade_id"]) for r in trades}) == len(trades), "a loop repeated a trade id"
    actual = reference_bars(records).sort_values(["symbol", "window_start"]).reset_index(drop=True)
    expected = expected_loops(tape, 2, NOW_MS)
    assert len(actual) == len(expected) == 2 * len(reference_bars(tape))
    for column in expected.columns:
        assert list(actual[column]) == list(expected[column]), column
    # The first loop begins in the second after "now"; the second starts after the first's last bar.
    first, second = loop_plan(tape, NOW_MS, 0), loop_plan(tape, NOW_MS, 1)
    assert first.time_shift_ms % 1000 == second.time_shift_ms % 1000 == 0
    assert NOW_MS <= min(r["timestamp"] for r in trades) < NOW_MS + 2000


def test_heartbeats_every_second_in_time_order_and_the_first_record_is_now() -> None:
    tape = list(read_tape(SAMPLE))[:3000]
    records = list(demo_records(tape, loops=2, now_ms=lambda: NOW_MS))
    assert records[0]["type"] == "heartbeat" and records[0]["timestamp"] == NOW_MS
    beats = [r["timestamp"] for r in records[1:] if r["type"] == "heartbeat"]
    assert beats == list(range(beats[0], beats[0] + 1000 * len(beats), 1000))
    last_trade = max(r["timestamp"] for r in records if r["type"] == "trade")
    assert beats[-1] > last_trade - 1000  # no second of the run lacks its heartbeat
    # Every record is paced by its ingest_ts, which is its own (event) time: never in the future.
    assert all(r["ingest_ts"] == r["timestamp"] for r in records)


def test_an_endless_demo_keeps_producing() -> None:
    tape = list(read_tape(SAMPLE))[:100]
    stream = demo_records(tape, now_ms=lambda: NOW_MS)
    ids = [r["trade_id"] for _ in range(1000) if (r := next(stream))["type"] == "trade"]
    assert len(ids) > 900 and len(set(ids)) == len(ids)
