"""Helpers for the API's tests: a live-bars feed filled by hand, and live bars in the topic's encoding."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

from core.live_bars import encode
from core.live_tail import LiveFeed
from core.schema import SCHEMA_VERSION


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def live_bar(
    symbol: str, start: dt.datetime, price: str, *, final: bool, exchange: str = "binance", trade_id: int = 0,
    emitted_at: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    p = Decimal(price)
    return {
        "v": SCHEMA_VERSION, "exchange": exchange, "symbol": symbol, "window_start": ms(start),
        "window_end": ms(start) + 1000, "open": p, "high": p + Decimal("0.25"), "low": p - Decimal("0.125"),
        "close": p + Decimal("0.01"), "volume": Decimal("0.003"), "quote_volume": (p * Decimal("0.003")),
        "vwap": float(p), "trade_count": 3, "buy_volume": Decimal("0.002"), "sell_volume": Decimal("0.001"),
        "first_trade_id": trade_id, "last_trade_id": trade_id + 2, "final": final,
        "emitted_at": emitted_at if emitted_at is not None else int(time.time() * 1000),
        "last_trade_ts": ms(start) + 900,
    }  # fmt: skip


def filled_feed(bars: list[dict[str, Any]]) -> LiveFeed:
    """A feed (never connected: its broker address is closed) holding `bars`, as read from the topic."""
    feed = LiveFeed("127.0.0.1:9", "crypto.bars.live", retry_s=60.0, client_id="api-test")
    for bar in bars:
        feed.ingest(encode(bar))
    return feed
