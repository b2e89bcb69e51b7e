"""A small lake of trades (lake/trades) and their 1 s bars (lake/ohlc), without Spark.

The trades are wire records (`core.schema.WIRE_TRADE`), so `tests.support.reference` computes
what any reader should get from them; the bars written to ohlc are that reference's, not the
code under test's.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.schema import TRADES, to_arrow
from lake import delta
from tests.support.lake_builder import SinkLake
from tests.support.reference import reference_bars

MIDNIGHT = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
MIDNIGHT_MS = int(MIDNIGHT.timestamp() * 1000)
SYMBOL = "AAAUSDT"
EXCHANGES = ("binance", "coinbase")
BIG = Decimal("9999999999.99999999")  # DECIMAL(18,8)'s largest value


def _amount(rng: random.Random, digits: int) -> Decimal:
    """A positive amount with 8 decimals and up to `digits` digits in all."""
    return Decimal(rng.randrange(1, 10**digits)).scaleb(-8)


def trade_records(n: int = 600, seed: int = 26, span_ms: int = 5000) -> list[dict[str, Any]]:
    """Trades of SYMBOL on both EXCHANGES, and some of another symbol, within `span_ms` around
    MIDNIGHT (UTC). Times fall on a coarse grid so that many share an event_time, and trade ids
    are shuffled against time, so ties resolve by trade id, not by arrival. A few trades carry
    the largest DECIMAL(18,8) price or quantity: their products need more than 64 bits."""
    rng = random.Random(seed)
    ids = {(e, s): rng.sample(range(1_000, 1_000_000), n) for e in EXCHANGES for s in (SYMBOL, "BBBUSDT")}
    records = []
    for i in range(n):
        exchange = rng.choice(EXCHANGES)
        symbol = SYMBOL if rng.random() < 0.85 else "BBBUSDT"
        price, quantity = _amount(rng, 13), _amount(rng, 11)
        if i % 97 == 0:
            price, quantity = (BIG, _amount(rng, 9)) if i % 2 else (_amount(rng, 10), BIG)
        records.append({
            "type": "trade", "v": 1, "exchange": exchange, "symbol": symbol,
            "price": str(price), "quantity": str(quantity),
            "timestamp": MIDNIGHT_MS - span_ms // 2 + rng.randrange(0, span_ms, 7),
            "trade_id": ids[exchange, symbol][i], "is_buyer_maker": rng.random() < 0.5,
            "ingest_ts": MIDNIGHT_MS + span_ms,
        })  # fmt: skip
    return records


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def trade_row(r: dict[str, Any], offset: int) -> dict[str, Any]:
    """A record as a lake/trades row (`core.schema.TRADES`), at Kafka offset `offset`."""
    return {
        "exchange": r["exchange"], "symbol": r["symbol"], "trade_id": r["trade_id"],
        "price": Decimal(r["price"]), "quantity": Decimal(r["quantity"]), "event_time": _utc(r["timestamp"]),
        "is_buyer_maker": r["is_buyer_maker"], "ingest_time": _utc(r["ingest_ts"]), "kafka_partition": 0,
        "kafka_offset": offset, "late": False, "date": _utc(r["timestamp"]).date(),
    }  # fmt: skip


def trade_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as lake/trades rows, at offsets 0, 1, ..."""
    return [trade_row(r, offset) for offset, r in enumerate(records)]


def write_trades(lake: Path, records: list[dict[str, Any]], batches: int = 3) -> None:
    """Commit the trades to lake/trades in `batches` commits of shuffled records, so neither a
    file's order nor the files' order is time order."""
    rows = trade_rows(records)
    random.Random(len(rows)).shuffle(rows)
    for b in range(batches):
        part = rows[b::batches]
        delta.append_rows(lake, "trades", pa.Table.from_pylist(part, schema=to_arrow(TRADES)), TRADES)


def write_bars(lake: Path, records: list[dict[str, Any]]) -> None:
    """Commit the trades' 1 s bars, as the reference computes them, to lake/ohlc."""
    bars = reference_bars(records)
    rows = []
    for bar in bars.to_dict("records"):
        start = bar["window_start"].to_pydatetime()
        rows.append({**bar, "window_start": start, "window_end": start + dt.timedelta(seconds=1), "date": start.date()})
    SinkLake(lake).write_batch(rows)


def trades_lake(lake: Path, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A lake with the trades and their bars; returns the trade records."""
    records = records if records is not None else trade_records()
    write_trades(lake, records)
    write_bars(lake, records)
    return records
