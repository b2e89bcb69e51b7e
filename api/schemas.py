"""The API's response shapes, for the OpenAPI schema (`/docs`) and its tests.

Decimal amounts are JSON strings holding the exact digits at the lake's scale
('64000.12000000'): a float would round them. Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field

DecimalText = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+(\.[0-9]+)?$",
        description="an exact decimal as a string, at the lake's scale: parse with Decimal, never float",
        json_schema_extra={"format": "decimal"},
    ),
]


class Problem(BaseModel):
    detail: str = Field(description="the reason, in one line")


class Market(BaseModel):
    exchange: str
    symbol: str
    first_bar: dt.datetime = Field(description="window_start of its first 1 s bar in the lake")
    newest_bar: dt.datetime = Field(description="window_start of its newest final 1 s bar")
    newest_bar_end: dt.datetime


class Symbols(BaseModel):
    markets: list[Market]


class Amounts(BaseModel):
    """What a 1 s bar and a candle both hold."""

    open: DecimalText
    high: DecimalText
    low: DecimalText
    close: DecimalText
    volume: DecimalText
    quote_volume: DecimalText
    trade_count: int
    buy_volume: DecimalText
    sell_volume: DecimalText
    first_trade_id: int
    last_trade_id: int


class Candle(Amounts):
    time: dt.datetime = Field(description="the bucket's start, UTC; buckets are aligned to UTC midnight")
    vwap: DecimalText | None = Field(description="quote_volume / volume, rounded half-even to the price scale")
    bars: int = Field(description="the 1 s bars in the bucket")
    provisional: bool = Field(description="true: built from forming live bars, and may still change")


class Candles(BaseModel):
    exchange: str
    symbol: str
    interval: str
    start: dt.datetime
    end: dt.datetime
    truncated: bool = Field(description="more candles were in range than `limit`")
    candles: list[Candle]


class Trade(BaseModel):
    """One row of lake/trades (its exchange and symbol are the response's)."""

    event_time: dt.datetime = Field(description="exchange trade time, UTC (ms precision)")
    trade_id: int = Field(description="venue's trade id; with event_time, the rows' order and the cursor's key")
    price: DecimalText
    quantity: DecimalText
    is_buyer_maker: bool = Field(description="true when the taker sold")
    late: bool = Field(description="it came after its bar was written or the watermark had passed it")
    ingest_time: dt.datetime | None = Field(description="when the ingestor received it, UTC")
    kafka_partition: int
    kafka_offset: int = Field(description="the first record of this trade on the topic")


class Trades(BaseModel):
    exchange: str
    symbol: str
    start: dt.datetime = Field(description="the range's start, resolved (inclusive)")
    end: dt.datetime = Field(description="the range's end, resolved (exclusive)")
    after: str | None = Field(description="the cursor this page follows, as given")
    limit: int = Field(description="rows per page: limit=, or the default page size")
    count: int = Field(description="rows in this page")
    next: str | None = Field(description="after= for the next page; null on the last page")
    trades: list[Trade]


class Bar(Amounts):
    exchange: str
    symbol: str
    window_start: dt.datetime
    window_end: dt.datetime
    final: bool
    source: str = Field(description="'lake' (written by the stream job) or 'live' (crypto.bars.live)")


class Latest(BaseModel):
    exchange: str
    symbol: str
    final: Bar | None = Field(description="the newest bar that can no longer change")
    provisional: Bar | None = Field(description="the forming bar after it, if any")
    live_stream: str


class Volatility(BaseModel):
    exchange: str
    symbol: str
    start: dt.datetime
    end: dt.datetime
    interval: str | None
    truncated: bool
    columns: list[str]
    rows: list[dict[str, float | int | str | None]] = Field(
        description="per 1 s bar: time, close (decimal text), log_return and the trailing volatility per "
        "window; with interval=: time, returns, volatility, realized_vol, realized_vol_annualized"
    )


class SqlQuery(BaseModel):
    query: str = Field(max_length=100_000, description="one read-only SELECT over the lake's views")
    max_rows: int | None = Field(default=None, ge=1, description="at most the server's cap (API_SQL_MAX_ROWS)")


class SqlColumn(BaseModel):
    name: str
    type: str


class SqlResult(BaseModel):
    columns: list[SqlColumn]
    rows: list[list[object]] = Field(description="decimals as strings, times as ISO 8601")
    row_count: int
    truncated: bool


class Health(BaseModel):
    status: str = Field(description="'ok', or 'unhealthy' with reasons (HTTP 503)")
    reasons: list[str]
    checked_at: dt.datetime
    lake: dict[str, object]
    freshness: list[dict[str, object]]
    job: list[dict[str, object]]
    kafka: dict[str, object]
    feed_events_last_hour: list[dict[str, object]]
    rejects_by_reason: list[dict[str, object]]
    live_stream: dict[str, object]
