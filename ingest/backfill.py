"""Fetching a detected trade-id gap over the venue's public REST API (`--backfill`).

- Binance: GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=<first>&limit=1000, ascending ids.
- Coinbase Exchange: GET /products/BTC-USD/trades?after=<last + 1>&limit=1000 returns trades with
  smaller ids, newest first; page down with `after` = the smallest id returned.

Advanced Trade has no id-addressable trade history, so a `market_trades` gap is reported, not filled.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from ingest import binance, coinbase
from ingest.errors import BadMessage
from ingest.tracking import Gap
from lake.trade import Trade, mapped

log = logging.getLogger(__name__)

PAGE = 1000


class BackfillFailed(RuntimeError):
    pass


class Backfiller(Protocol):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]: ...


def _get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "crypto-lakehouse-ingest"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise BackfillFailed(f"GET {url}: {exc}") from exc


class _RestClient:
    def __init__(
        self,
        base_url: str,
        symbol_map: dict[str, str] | None = None,
        timeout: float = 10.0,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.symbol_map = symbol_map or {}
        self.timeout = timeout
        self.now_ms = now_ms


class BinanceRest(_RestClient):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]:
        trades: list[Trade] = []
        next_id = gap.first
        while next_id <= gap.last:
            limit = min(PAGE, gap.last - next_id + 1)
            query = urllib.parse.urlencode({"symbol": exchange_symbol.upper(), "fromId": next_id, "limit": limit})
            rows = _get_json(f"{self.base_url}/api/v3/historicalTrades?{query}", self.timeout)
            if not isinstance(rows, list) or not rows:
                break
            received = self.now_ms()
            for row in rows:
                try:
                    trade = binance.parse_rest_trade(row, exchange_symbol, received)
                except (BadMessage, AttributeError) as exc:
                    raise BackfillFailed(f"binance {exchange_symbol}: bad REST row {row!r}: {exc}") from exc
                if gap.first <= trade.trade_id <= gap.last:
                    trades.append(trade)
            next_id = max(t.trade_id for t in trades) + 1 if trades else gap.last + 1
        return [mapped(t, self.symbol_map) for t in trades]


class CoinbaseRest(_RestClient):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]:
        trades: list[Trade] = []
        after = gap.last + 1
        while after > gap.first:
            query = urllib.parse.urlencode({"after": after, "limit": PAGE})
            product = urllib.parse.quote(exchange_symbol)
            rows = _get_json(f"{self.base_url}/products/{product}/trades?{query}", self.timeout)
            if not isinstance(rows, list) or not rows:
                break
            received = self.now_ms()
            for row in rows:
                try:
                    trade = coinbase.parse_rest_trade(row, exchange_symbol, received, self.symbol_map)
                except (BadMessage, AttributeError) as exc:
                    raise BackfillFailed(f"coinbase {exchange_symbol}: bad REST row {row!r}: {exc}") from exc
                if gap.first <= trade.trade_id <= gap.last:
                    trades.append(trade)
            smallest = min(int(row.get("trade_id", after)) for row in rows)
            if smallest >= after:
                break  # the server ignored `after`; stop rather than loop
            after = smallest
        return sorted(trades, key=lambda t: t.trade_id)
