"""The live bars' rules in plain Python (jobs.forming_bars) against the independent reference."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pandas as pd

from core import live_bars
from core.schema import OHLC, column_names
from core.settings import REPO_ROOT
from core.trade import heartbeat
from core.wire import Accepted, judge, judge_value
from ingest.tape import read_tape
from jobs.forming_bars import FormingBars
from tests.support.messy_tape import messy_tape
from tests.support.reference import reference_bars

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
BAR_COLUMNS = [c for c in column_names(OHLC) if c != "date"]


def run(
    records: list[dict[str, Any]], batch: int = 200, delay_ms: int = 5000
) -> tuple[list[dict[str, Any]], FormingBars]:
    """Feed records in batches, as the consumer does; then a heartbeat far ahead closes every window."""
    forming = FormingBars(delay_ms)
    updates: list[dict[str, Any]] = []
    for i in range(0, len(records), batch):
        for record in records[i : i + batch]:
            verdict = judge(record)
            if isinstance(verdict, Accepted):
                forming.add(verdict)
        updates += forming.end_batch()
    last = max(r["timestamp"] for r in records if isinstance(r.get("timestamp"), int) and r["timestamp"] < 4e12)
    closing = judge(heartbeat("binance", last + delay_ms + 1000))
    assert isinstance(closing, Accepted)
    forming.add(closing)
    updates += forming.end_batch()
    return updates, forming


def finals(updates: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [u for u in updates if u["final"]]
    frame = pd.DataFrame(rows)
    frame["window_start"] = pd.to_datetime(frame["window_start"], unit="ms", utc=True)
    return frame.sort_values(["exchange", "symbol", "window_start"]).reset_index(drop=True)


def assert_equals_reference(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected.sort_values(["exchange", "symbol", "window_start"]).reset_index(drop=True)
    assert len(actual) == len(expected) > 600
    for column in expected.columns:
        assert list(actual[column]) == list(expected[column]), column


def test_final_bars_of_the_real_tape_equal_the_reference() -> None:
    tape = list(read_tape(SAMPLE))
    updates, forming = run(tape)
    assert_equals_reference(finals(updates), reference_bars(tape))
    assert forming.counts.late == forming.counts.duplicates == 0
    assert forming.open_windows == 0


def test_messy_tape_duplicates_out_of_order_and_invalid_records() -> None:
    tape, _invalid = messy_tape(list(read_tape(SAMPLE)))
    updates, forming = run(tape, batch=97)
    assert_equals_reference(finals(updates), reference_bars(tape))
    assert forming.counts.duplicates == 150


def test_each_window_is_final_once_and_its_last_provisional_update_agrees() -> None:
    tape = list(read_tape(SAMPLE))[:3000]
    updates, _ = run(tape, batch=10)
    seen_final: set[tuple[str, str, int]] = set()
    last_provisional: dict[tuple[str, str, int], dict[str, Any]] = {}
    for u in updates:
        key = (u["exchange"], u["symbol"], u["window_start"])
        assert key not in seen_final, "an update after the window's final one"
        if u["final"]:
            seen_final.add(key)
            before = last_provisional.get(key)
            if before is not None:  # a window that changed after its last provisional update gets one
                assert {k: before[k] for k in BAR_COLUMNS} == {k: u[k] for k in BAR_COLUMNS}
        else:
            last_provisional[key] = u
    assert len(seen_final) > 100
    # Provisional updates really are partial while trades arrive: some trade counts grow.
    counts = [u["trade_count"] for u in updates if not u["final"]]
    assert len(counts) > len(seen_final)


def test_a_trade_at_or_behind_the_watermark_is_late_and_ignored() -> None:
    forming = FormingBars(5000)
    base = 1_723_161_255_000
    trade = {"type": "trade", "v": 1, "exchange": "binance", "symbol": "BTCUSDT", "price": "10.00000000",
             "quantity": "1.00000000", "timestamp": base + 10_000, "trade_id": 1, "is_buyer_maker": False}  # fmt: skip
    forming.add(judge(trade))  # type: ignore[arg-type]
    forming.end_batch()  # watermark = base + 5000
    forming.add(judge({**trade, "trade_id": 2, "timestamp": base + 5000}))  # type: ignore[arg-type]
    forming.add(judge({**trade, "trade_id": 3, "timestamp": base + 5001, "price": "11.00000000"}))  # type: ignore[arg-type]
    [bar] = [u for u in forming.end_batch() if u["window_start"] == base + 5000]
    assert forming.counts.late == 1
    assert bar["trade_count"] == 1 and bar["open"] == Decimal("11.00000000")


def test_windows_before_the_start_point_are_never_emitted() -> None:
    tape = list(read_tape(SAMPLE))[:2000]
    start = (tape[0]["timestamp"] // 1000 + 5) * 1000
    forming = FormingBars(5000, start_ms=start)
    for record in tape:
        forming.add(judge(record))  # type: ignore[arg-type]
    updates = forming.end_batch()
    assert min(u["window_start"] for u in updates) >= start
    assert forming.counts.before_start > 0


def test_an_event_cap_holds_the_watermark_back() -> None:
    tape = list(read_tape(SAMPLE))[:2000]
    forming = FormingBars(5000)
    for record in tape:
        forming.add(judge(record))  # type: ignore[arg-type]
    first = tape[0]["timestamp"]
    assert not [u for u in forming.end_batch(event_cap_ms=first) if u["final"]]
    assert [u for u in forming.end_batch() if u["final"]]


def test_wire_encoding_round_trips_exactly() -> None:
    tape = list(read_tape(SAMPLE))[:500]
    updates, _ = run(tape)
    for u in updates:
        message = live_bars.encode({**u, "emitted_at": 1})
        back = live_bars.decode(message)
        assert {k: back[k] for k in u} == u
        assert isinstance(orjson.loads(message)["open"], str)  # exact decimal text, never a float
    frame = live_bars.to_frame([live_bars.decode(live_bars.encode({**u, "emitted_at": 1})) for u in updates])
    assert list(frame.columns) == list(live_bars.FIELDS)


def test_judge_value_names_what_is_wrong() -> None:
    assert judge_value(None) == "empty_value"
    assert judge_value(b"{not json") == "malformed_json"
    assert judge_value(b"[1]") == "malformed_json"
    assert judge_value(b'{"v":1}') == "missing_type"
