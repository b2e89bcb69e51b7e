"""Against the real venues (needs the internet): off by default, run with `pytest -m live`."""

from __future__ import annotations

import threading

import pytest

from core.settings import load
from ingest.live import run_feed

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    ("exchange", "symbols", "feed"),
    [
        ("binance", ["BTCUSDT", "ETHUSDT"], "matches"),
        ("coinbase", ["BTC-USD", "ETH-USD"], "matches"),
        ("coinbase", ["BTC-USD", "ETH-USD"], "market_trades"),
    ],
)
def test_a_real_feed_delivers_valid_trades(exchange: str, symbols: list[str], feed: str) -> None:
    settings = load(coinbase_feed=feed, ws_max_retries=3)
    counters = run_feed(exchange, symbols, settings, threading.Event(), publish=False, duration_s=15)
    assert counters.trades > 0
    assert counters.dead_letters == 0
    assert counters.heartbeats >= 5
