"""The API's SQL: parameterized statements over the lake's views. No request text is pasted in.

Identifiers that vary (the volatility windows) come from the lake's table record, never from
a request. Each function takes a cursor and plain values, and returns rows or an Arrow table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

from core.schema import TRADES as TRADES_TABLE
from core.schema import to_arrow
from core.tables import volatility_column

CANDLE_COLUMNS = (
    "open, high, low, close, volume, quote_volume, trade_count, buy_volume, sell_volume, first_trade_id, "
    "last_trade_id, bars"
)
CANDLES = (
    f"SELECT bucket_start AS time, {CANDLE_COLUMNS} FROM candles(?, to_seconds(?), ?, ?, venue := ?) "
    "ORDER BY time LIMIT ?"
)


def candles(
    cur: duckdb.DuckDBPyConnection,
    exchange: str,
    symbol: str,
    step_s: int,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> pa.Table:
    """The `candles()` macro over the `ohlc` view: any step, any range."""
    return cur.sql(CANDLES, params=[symbol, step_s, start, end, exchange, limit]).to_arrow_table()


def newest_final_bar(cur: duckdb.DuckDBPyConnection, exchange: str, symbol: str) -> dict[str, Any] | None:
    rel = cur.execute("SELECT * EXCLUDE (date) FROM latest_bars WHERE exchange = ? AND symbol = ?", [exchange, symbol])
    row = rel.fetchone()
    return None if row is None else dict(zip([d[0] for d in rel.description], row, strict=True))


def volatility_names(windows: tuple[int, ...]) -> list[str]:
    return [volatility_column(kind, w) for w in windows for kind in ("returns", "volatility", "realized_vol")]


def volatility(
    cur: duckdb.DuckDBPyConnection,
    exchange: str,
    symbol: str,
    windows: tuple[int, ...],
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> pa.Table:
    """The job's rows: each 1 s bar's close, log return and trailing volatility per window."""
    columns = ", ".join(["window_start AS time", "close", "log_return", *volatility_names(windows)])
    return cur.sql(
        f"SELECT {columns} FROM volatility WHERE exchange = ? AND symbol = ? AND window_start >= ? "
        "AND window_start < ? AND date BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) ORDER BY time LIMIT ?",
        params=[exchange, symbol, start, end, start, end, limit],
    ).to_arrow_table()


def realized_volatility(
    cur: duckdb.DuckDBPyConnection,
    exchange: str,
    symbol: str,
    step_s: int,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> pa.Table:
    """The `realized_volatility()` macro: per bucket of `step_s`, from the bars' log returns."""
    return cur.sql(
        "SELECT bucket_start AS time, returns, volatility, realized_vol, realized_vol_annualized "
        "FROM realized_volatility(?, to_seconds(?), ?, ?, venue := ?) ORDER BY time LIMIT ?",
        params=[symbol, step_s, start, end, exchange, limit],
    ).to_arrow_table()


def last_batches(cur: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per query of the job: its newest batch (query, batch_id, timestamp, input_rows, watermark, sources)."""
    return cur.execute(
        "SELECT query, batch_id, timestamp, input_rows, watermark, CAST(sources AS VARCHAR) FROM progress "
        "QUALIFY row_number() OVER (PARTITION BY query ORDER BY batch_id DESC, timestamp DESC) = 1 ORDER BY query"
    ).fetchall()


def feed_events_since(cur: duckdb.DuckDBPyConnection, since: dt.datetime) -> list[tuple[Any, ...]]:
    """(kind, exchange, count) of the feed events since `since` (health records excluded)."""
    return cur.execute(
        "SELECT kind, exchange, count(*) FROM feed_events WHERE event_time >= ? AND date >= CAST(? AS DATE) "
        "AND kind <> 'health' GROUP BY ALL ORDER BY ALL",
        [since, since],
    ).fetchall()


def rejects_by_reason(cur: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return cur.execute("SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY 2 DESC, 1").fetchall()


# `GET /v1/trades`. A trade's key is (event_time, trade_id): unique per market (lake/trades holds
# each trade once) and the order the bars take trades in. `(event_time > ? OR trade_id > ?)` is
# "key after the cursor" given `event_time >= ?` at the cursor's time; the plain time bounds are
# what DuckDB pushes into the scan (row groups by their event_time statistics), and `date` picks
# the partitions.
TRADE_COLUMNS = (
    "event_time", "trade_id", "price", "quantity", "is_buyer_maker", "late", "ingest_time", "kafka_partition",
    "kafka_offset",
)  # fmt: skip
# The rows as lake/trades types them (core.schema): DuckDB's Arrow says "Etc/UTC" and nullable.
TRADE_SCHEMA = to_arrow(tuple(c for name in TRADE_COLUMNS for c in TRADES_TABLE if c.name == name))
TRADE_KEYS = (
    "SELECT event_time, trade_id FROM trades WHERE exchange = ? AND symbol = ? AND date = ? AND event_time >= ? "
    "AND event_time < ? AND (event_time > ? OR trade_id > ?) ORDER BY event_time, trade_id LIMIT ?"
)
TRADES = (
    f"SELECT {', '.join(TRADE_COLUMNS)} FROM trades WHERE exchange = ? AND symbol = ? AND date BETWEEN ? AND ? "
    "AND event_time >= ? AND event_time <= ? AND (event_time > ? OR trade_id > ?) "
    "AND (event_time < ? OR trade_id <= ?) ORDER BY event_time, trade_id LIMIT ?"
)
TradeKey = tuple[dt.datetime, int]  # (event_time, trade_id)


def trade_keys(
    cur: duckdb.DuckDBPyConnection,
    exchange: str,
    symbol: str,
    day: dt.date,
    lower: dt.datetime,
    end: dt.datetime,
    after: TradeKey,
    limit: int,
) -> pa.Table:
    """The first `limit` keys of one date partition's trades in [lower, end) after `after`, in order."""
    params = [exchange, symbol, day, lower, end, *after, limit]
    return cur.sql(TRADE_KEYS, params=params).to_arrow_table()


def trades_params(
    exchange: str, symbol: str, lower: dt.datetime, after: TradeKey, last: TradeKey, limit: int
) -> list[Any]:
    """TRADES' parameters: the trades after `after` up to `last` (both keys), from `lower` on."""
    return [exchange, symbol, lower.date(), last[0].date(), lower, last[0], *after, *last, limit]


def trades(
    cur: duckdb.DuckDBPyConnection,
    exchange: str,
    symbol: str,
    lower: dt.datetime,
    after: TradeKey,
    last: TradeKey,
    limit: int,
    batch_rows: int,
) -> pa.RecordBatchReader:
    """The trades after `after` up to `last`, in key order, as Arrow batches (TRADE_SCHEMA) read as
    they are sent."""
    params = trades_params(exchange, symbol, lower, after, last, limit)
    return cur.sql(TRADES, params=params).to_arrow_reader(batch_rows).cast(TRADE_SCHEMA)
