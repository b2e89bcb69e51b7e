"""The demo market: a real tape replayed in a loop as if it were happening now.

`make live` uses it when no venue is named, so a fresh machine with no internet shows a moving
market. Each loop shifts the tape's times to the present (by whole seconds, so each loop's
1-second bars are the tape's bars, shifted) and its trade ids past the previous loop's, so
a loop is new trades, never duplicates. The exchange is renamed `demo`, so demo bars never
pass for a venue's. A heartbeat each second keeps the watermark moving between trades, as
the live ingestor's do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.schema import RECORD_TRADE
from core.trade import heartbeat

DEMO_EXCHANGE = "demo"
HEARTBEAT_MS = 1000


@dataclass(frozen=True)
class Loop:
    """How loop `n` moves the tape: `time_shift_ms` (whole seconds) and per-symbol id shifts."""

    time_shift_ms: int
    id_shift: dict[str, int]


def _trades(tape: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in tape if r.get("type", RECORD_TRADE) == RECORD_TRADE]


def loop_plan(tape: list[dict[str, Any]], now_ms: int, n: int) -> Loop:
    """Loop n's shifts: loop 0 starts within the second after `now_ms`; each next loop follows
    the previous one's last second, and its ids follow the previous loop's highest id."""
    trades = _trades(tape)
    first_s = min(r["timestamp"] for r in trades) // 1000 * 1000
    last_s = max(r["timestamp"] for r in trades) // 1000 * 1000
    span_ms = last_s - first_s + 1000  # whole seconds, so a bar never straddles two loops
    start = -(-now_ms // 1000) * 1000  # the next whole second
    ids: dict[str, list[int]] = {}
    for r in trades:
        ids.setdefault(r["symbol"], []).append(r["trade_id"])
    id_span = {symbol: max(v) - min(v) + 1 for symbol, v in ids.items()}
    return Loop(start - first_s + n * span_ms, {symbol: n * span for symbol, span in id_span.items()})


def shifted(record: dict[str, Any], loop: Loop) -> dict[str, Any]:
    ts = record["timestamp"] + loop.time_shift_ms
    return {
        **record,
        "exchange": DEMO_EXCHANGE,
        "timestamp": ts,
        "trade_id": record["trade_id"] + loop.id_shift[record["symbol"]],
        "ingest_ts": ts,  # published when the clock reaches it (ingest.replay paces by ingest_ts)
    }


def demo_records(
    tape: list[dict[str, Any]], *, loops: int | None = None, now_ms: Callable[[], int]
) -> Iterator[dict[str, Any]]:
    """The tape's trades, loop after loop (forever when `loops` is None), in arrival order,
    with a heartbeat each whole second. The first record is a heartbeat at the current time,
    so a replay paced at speed 1 publishes each trade when the clock reaches its timestamp."""
    trades = _trades(tape)
    start = now_ms()
    beat = start
    yield heartbeat(DEMO_EXCHANGE, beat, beat)
    beat = -(-start // HEARTBEAT_MS) * HEARTBEAT_MS
    n = 0
    while loops is None or n < loops:
        plan = loop_plan(trades, start, n)
        for record in trades:
            trade = shifted(record, plan)
            while beat <= trade["timestamp"]:
                yield heartbeat(DEMO_EXCHANGE, beat, beat)
                beat += HEARTBEAT_MS
            yield trade
        n += 1
