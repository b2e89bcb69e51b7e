"""The sink's window closer without Spark: what it releases, when, and what it counts as late."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from core.schema import OHLC, to_arrow
from jobs.bar_closer import LAST_EVENT_TIME, LAST_PARTITION, BarCloser

T0 = dt.datetime(2026, 12, 2, 0, 0, tzinfo=dt.UTC)
DELAY_MS = 5000
UPDATE = pa.schema(
    [*to_arrow(OHLC), pa.field(LAST_EVENT_TIME, pa.timestamp("us", "UTC")), pa.field(LAST_PARTITION, pa.int64())]
)
HEARTBEATS = pa.schema([("kafka_partition", pa.int64()), ("event_time", pa.timestamp("us", "UTC"))])
PARTITIONS = {"BTC": 0, "ETH": 1}  # the ingestor keys by symbol: one partition each


def _at(ms: int) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=ms)


def _update(symbol: str, second: int, trades: int, close: str = "100", newest_ms: int = 900) -> dict[str, Any]:
    """A window's update from Spark: its aggregate so far; its newest trade `newest_ms` into it."""
    start = T0 + dt.timedelta(seconds=second)
    price = Decimal(close)
    return {
        "exchange": "binance", "symbol": symbol, "window_start": start,
        "window_end": start + dt.timedelta(seconds=1), "open": price, "high": price, "low": price,
        "close": price, "volume": Decimal(trades), "quote_volume": price * trades, "vwap": float(price),
        "trade_count": trades, "buy_volume": Decimal(trades), "sell_volume": Decimal(0),
        "first_trade_id": second * 100, "last_trade_id": second * 100 + trades - 1, "date": start.date(),
        LAST_EVENT_TIME: start + dt.timedelta(milliseconds=newest_ms), LAST_PARTITION: PARTITIONS[symbol],
    }  # fmt: skip


def _apply(
    closer: BarCloser, updates: list[dict[str, Any]], heartbeats: Sequence[tuple[int, int]] = ()
) -> tuple[list[tuple[str, int, int]], int]:
    """heartbeats: (partition, ms) -> released (symbol, second, trade_count) and the late trades."""
    rows = [{"kafka_partition": p, "event_time": _at(ms)} for p, ms in heartbeats]
    out = closer.apply(pa.Table.from_pylist(updates, UPDATE), pa.Table.from_pylist(rows, HEARTBEATS))
    assert LAST_EVENT_TIME not in out.final.column_names and LAST_PARTITION not in out.final.column_names
    released = [
        (r["symbol"], int((r["window_start"] - T0).total_seconds()), r["trade_count"]) for r in out.final.to_pylist()
    ]
    return sorted(released), out.late_trades


def test_a_window_is_released_once_in_the_batch_that_moves_the_watermark_past_its_end() -> None:
    closer = BarCloser(DELAY_MS)
    # Batch 0: seconds 0 and 1 change; the newest trade (1.9 s) leaves the watermark at -3.1 s.
    assert _apply(closer, [_update("BTC", 0, 2), _update("BTC", 1, 1)]) == ([], 0)
    # Batch 1: second 1 changes again; a trade at 6.0 s moves the watermark to 1.0 s: second 0 closes.
    released = _apply(closer, [_update("BTC", 1, 3, newest_ms=500), _update("BTC", 6, 1, newest_ms=0)])
    assert released == ([("BTC", 0, 2)], 0)
    # Batch 2: a heartbeat at 7.0 s closes second 1, with its newest version (3 trades); second 6 stays open.
    assert _apply(closer, [], [(0, 7000)]) == ([("BTC", 1, 3)], 0)
    assert closer.open is not None and closer.open.num_rows == 1


def test_an_update_of_a_released_window_is_counted_late_and_not_written_again() -> None:
    closer = BarCloser(DELAY_MS)
    _apply(closer, [_update("BTC", 0, 2)])
    assert _apply(closer, [_update("BTC", 9, 1, newest_ms=500)]) == ([("BTC", 0, 2)], 0)
    # Spark had not yet evicted second 0: its update carries 2 + 3 trades, 3 of them late.
    assert _apply(closer, [_update("BTC", 0, 5), _update("BTC", 9, 2, newest_ms=600)]) == ([], 3)
    # A window released long before, or never seen: every trade of its update is late.
    assert _apply(closer, [_update("BTC", 2, 4)], [(0, 9700)]) == ([], 4)


def test_a_partition_that_lags_holds_the_watermark_back_and_a_heartbeat_moves_it() -> None:
    closer = BarCloser(DELAY_MS)
    # Partition 1 (ETH) is read 20 s behind partition 0 (BTC), as in a catch-up batch.
    _apply(closer, [_update("BTC", 30, 1, newest_ms=500), _update("ETH", 10, 1, newest_ms=500)])
    assert closer.floor_us == int(_at(10_500 - DELAY_MS).timestamp() * 1e6)
    # ETH's next trades (second 11) are not late: the watermark followed the lagging partition.
    released, late = _apply(closer, [_update("ETH", 11, 1, newest_ms=500), _update("BTC", 31, 1, newest_ms=0)])
    assert late == 0 and released == []
    # A heartbeat is a venue's word for every partition: it moves the watermark past both.
    released, late = _apply(closer, [], [(0, 40_000)])
    assert released == [("BTC", 30, 1), ("BTC", 31, 1), ("ETH", 10, 1), ("ETH", 11, 1)] and late == 0


def test_the_saved_state_carries_on_exactly() -> None:
    batches: list[tuple[list[dict[str, Any]], list[tuple[int, int]]]] = [
        ([_update("BTC", 0, 1), _update("ETH", 0, 2, newest_ms=950)], []),
        ([_update("BTC", 1, 1)], []),
        ([_update("BTC", 7, 1), _update("ETH", 0, 3, newest_ms=980), _update("ETH", 7, 1, newest_ms=950)], []),
        ([_update("ETH", 0, 4, newest_ms=990), _update("BTC", 8, 1)], [(1, 8000)]),
        ([], [(0, 20_000)]),
    ]
    straight = BarCloser(DELAY_MS)
    expected = [_apply(straight, *batch) for batch in batches]
    resumed = BarCloser(DELAY_MS)
    got = []
    for batch in batches:
        got.append(_apply(resumed, *batch))
        resumed = BarCloser.from_json(resumed.to_json(), resumed.open, DELAY_MS)
    assert got == expected
    assert sum(late for _, late in expected) == 1  # ETH second 0: 4 trades after 3 were released
