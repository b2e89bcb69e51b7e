"""The one definition of every record and table schema in the project.

The ingestor, the Spark job, the lake reader and the dashboard all derive their
types from the column lists below, through `to_arrow`, `to_spark` and
`duckdb_type`. Nothing else spells out a column type.

Prices and quantities travel on Kafka as the exchange's own decimal strings and
land in the lake as DECIMAL(18, 8): exact to 8 decimal places (Binance's and
Coinbase's finest increment), up to 10 integer digits. A value that needs more
is rejected with a reason, never rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # pyspark is only needed by the job and its tests
    from pyspark.sql.types import DataType, StructType

SCHEMA_VERSION = 1

PRICE_PRECISION, PRICE_SCALE = 18, 8
QTY_PRECISION, QTY_SCALE = 18, 8
PRICE_TYPE = f"decimal({PRICE_PRECISION},{PRICE_SCALE})"
QTY_TYPE = f"decimal({QTY_PRECISION},{QTY_SCALE})"
# Sums over a bar: Spark widens sum(decimal(p, s)) to decimal(p + 10, s), and an
# exact product price*qty needs decimal(p1 + p2 + 1, s1 + s2).
VOLUME_TYPE = f"decimal({QTY_PRECISION + 10},{QTY_SCALE})"
QUOTE_VOLUME_TYPE = f"decimal(38,{PRICE_SCALE + QTY_SCALE})"

# Trade times outside this range are garbage, not market data (2010 .. 2100).
MIN_TIMESTAMP_MS = 1_262_304_000_000
MAX_TIMESTAMP_MS = 4_102_444_800_000

RECORD_TRADE = "trade"
RECORD_HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Column:
    """One column: a name, a logical type and whether it may be null."""

    name: str
    type: str  # string | int64 | bool | double | timestamp | date | decimal(p,s) | json (DuckDB only)
    nullable: bool = True
    doc: str = ""
    default: int | None = None  # the value of rows written without it (`lake.delta.conform`)


# What the ingestor publishes on the trades topic, one JSON object per message.
# Heartbeats share the record: type="heartbeat", and only exchange and timestamp set.
WIRE_TRADE: tuple[Column, ...] = (
    Column("type", "string", doc="'trade' or 'heartbeat'"),
    Column("v", "int64", doc="schema version"),
    Column("exchange", "string", doc="venue, lower case: binance, coinbase"),
    Column("symbol", "string", doc="canonical symbol, e.g. BTCUSDT, BTCUSD"),
    Column("price", "string", doc="exchange's decimal string"),
    Column("quantity", "string", doc="exchange's decimal string"),
    Column("timestamp", "int64", doc="exchange trade time, epoch ms"),
    Column("trade_id", "int64", doc="venue's trade id"),
    Column("is_buyer_maker", "bool", doc="true when the taker sold"),
    Column("ingest_ts", "int64", doc="ingestor receipt time, epoch ms"),
)

BAR_MS = 1000  # one bar's window: the Spark job's (jobs/bars.py) and the live bars' (jobs/forming_bars.py)

# lake/ohlc: one row per (exchange, symbol, 1-second window) that has trades.
OHLC: tuple[Column, ...] = (
    Column("exchange", "string", False),
    Column("symbol", "string", False, "partition column"),
    Column("window_start", "timestamp", False, "UTC, inclusive"),
    Column("window_end", "timestamp", False, "UTC, exclusive"),
    Column("open", PRICE_TYPE, False, "first trade by (timestamp, trade_id)"),
    Column("high", PRICE_TYPE, False),
    Column("low", PRICE_TYPE, False),
    Column("close", PRICE_TYPE, False, "last trade by (timestamp, trade_id)"),
    Column("volume", VOLUME_TYPE, False, "sum of quantity"),
    Column("quote_volume", QUOTE_VOLUME_TYPE, False, "sum of price * quantity"),
    Column("vwap", "double", True, "quote_volume / volume"),
    Column("trade_count", "int64", False),
    Column("buy_volume", VOLUME_TYPE, False, "taker buys: is_buyer_maker false"),
    Column("sell_volume", VOLUME_TYPE, False, "taker sells: is_buyer_maker true"),
    Column("first_trade_id", "int64", False),
    Column("last_trade_id", "int64", False),
    Column("date", "date", False, "partition column: UTC date of window_start"),
)

# The revision columns of lake/ohlc and lake/volatility: a bar is written once, final, when the
# watermark passes it; trades that arrive after that (late, or backfilled after a gap) revise it
# from lake/trades (`jobs.revisions`), as a Delta MERGE. Time travel shows the bar as it was.
REVISION: tuple[Column, ...] = (
    Column("revision", "int64", False, "0 as first written; +1 each time late or backfilled trades revised it", 0),
    Column("revised_at", "timestamp", True, "when the newest revision was computed, UTC; null if never revised"),
)
REVISION_NAMES = ("revision", "revised_at")


def revisable(columns: tuple[Column, ...]) -> tuple[Column, ...]:
    """A table's columns with the REVISION columns, before its `date` partition column."""
    return (*(c for c in columns if c.name != "date"), *REVISION, *(c for c in columns if c.name == "date"))


OHLC_TABLE = revisable(OHLC)  # lake/ohlc's columns: the job's bars, plus their revision

# lake/trades: every trade the job accepted, once per (exchange, symbol, trade_id): the ticks
# the bars are made of, with where each came from. Written from Spark's executors
# (`jobs.tick_writer`), in the same micro-batch and exactly-once commit as its bars.
TRADES: tuple[Column, ...] = (
    Column("exchange", "string", False),
    Column("symbol", "string", False, "partition column"),
    Column("trade_id", "int64", False, "venue's trade id; stored once per (exchange, symbol, trade_id)"),
    Column("price", PRICE_TYPE, False),
    Column("quantity", QTY_TYPE, False),
    Column("event_time", "timestamp", False, "exchange trade time, UTC (ms precision)"),
    Column("is_buyer_maker", "bool", False, "true when the taker sold"),
    Column("ingest_time", "timestamp", True, "when the ingestor received it, UTC; null if the record had none"),
    Column("kafka_partition", "int64", False),
    Column("kafka_offset", "int64", False, "the first record of this trade on the topic"),
    Column("late", "bool", False, "it came after its bar was written or the watermark had passed it"),
    Column("date", "date", False, "partition column: UTC date of event_time"),
)

# `crypto.bars.live` (jobs/forming_bars_service.py): the forming 1-second bar of each (exchange, symbol),
# published again each time it changes, and once more with final=true when the watermark
# passes its end. One JSON object per message, keyed `exchange:symbol`. On the wire, decimals
# are strings (exact), timestamps are epoch ms and `date` is left out (it is a lake partition).
LIVE_BAR: tuple[Column, ...] = (
    Column("v", "int64", False, "schema version"),
    *(c for c in OHLC if c.name != "date"),
    Column("final", "bool", False, "false while the window can still change"),
    Column("emitted_at", "int64", False, "when this update was published, epoch ms"),
    Column("last_trade_ts", "int64", False, "event time of the newest trade included, epoch ms"),
    Column("revision", "int64", False, "0 from the forming bars; n >= 1: the job's n-th revision of a final bar", 0),
)

# lake/rejects: every record the job could not accept, with the reason.
REJECTS: tuple[Column, ...] = (
    Column("reason", "string", False),
    Column("raw", "string", True, "the Kafka value as received"),
    Column("kafka_key", "string"),
    Column("kafka_topic", "string", False),
    Column("kafka_partition", "int64", False),
    Column("kafka_offset", "int64", False),
    Column("kafka_timestamp", "timestamp", False),
    Column("date", "date", False, "partition column: UTC date of kafka_timestamp"),
)

# Feed events on `crypto.feed_events`, landed as lake/feed_events: what the
# ingestor knows it missed (gaps, disconnects) and how healthy each venue was.
FEED_EVENT_GAP = "gap"  # trade ids from_trade_id..to_trade_id never received
FEED_EVENT_SEQUENCE_GAP = "sequence_gap"  # feed sequence numbers skipped (ids in from/to_trade_id)
FEED_EVENT_DISCONNECT = "disconnect"  # no data between from_ts and to_ts
FEED_EVENT_BACKFILL = "backfill"  # trades from_trade_id..to_trade_id fetched over REST
FEED_EVENT_HEALTH = "health"  # one per venue every health interval
FEED_EVENT: tuple[Column, ...] = (
    Column("v", "int64", doc="schema version"),
    Column("kind", "string", False, "gap | sequence_gap | disconnect | backfill | health"),
    Column("exchange", "string", False),
    Column("symbol", "string", True, "null for venue-wide records (health)"),
    Column("from_trade_id", "int64", True, "first missing id (gap), last id before (disconnect)"),
    Column("to_trade_id", "int64", True, "last missing id (gap), first id after (disconnect)"),
    Column("from_ts", "int64", True, "epoch ms: start of the window without data"),
    Column("to_ts", "int64", True, "epoch ms: end of the window without data"),
    Column("count", "int64", True, "ids missing (gap), trades fetched (backfill)"),
    Column("lag_p50_ms", "double", True, "health: exchange time -> receipt, median"),
    Column("lag_p99_ms", "double", True, "health: exchange time -> receipt, 99th percentile"),
    Column("msgs_per_s", "double", True, "health: frames received per second"),
    Column("reconnects", "int64", True, "health: reconnects since start"),
    Column("detail", "string", True),
    Column("ingest_ts", "int64", False, "when the ingestor emitted it, epoch ms"),
)
FEED_EVENTS_TABLE: tuple[Column, ...] = (
    *FEED_EVENT,
    Column("event_time", "timestamp", False, "ingest_ts as a UTC timestamp"),
    Column("date", "date", False, "partition column: UTC date of ingest_ts"),
)

# The dead-letter topic `crypto.trades.dlq`: frames the ingestor could not turn into trades.
DEAD_LETTER: tuple[Column, ...] = (
    Column("v", "int64", doc="schema version"),
    Column("source", "string", False, "where the frame came from, e.g. binance:ws, coinbase:rest, replay:FILE"),
    Column("reason", "string", False, "short stable label, e.g. malformed_json, nonpositive_price"),
    Column("detail", "string", True),
    Column("raw", "string", False, "the frame as received"),
    Column("ingest_ts", "int64", True, "receipt time, epoch ms"),
)

# lake/_progress/date=*/<query>.ndjson: one JSON object per micro-batch (jobs/progress.py).
PROGRESS: tuple[Column, ...] = (
    Column("query", "string", False, "ohlc | rejects | feed_events | volatility"),
    Column("batch_id", "int64", False),
    Column("timestamp", "timestamp", False, "when the batch started, UTC"),
    Column("input_rows", "int64", False),
    Column("input_rows_per_s", "double", True),
    Column("processed_rows_per_s", "double", True),
    Column("batch_duration_ms", "int64", True),
    Column("watermark", "timestamp", True, "the event-time watermark after the batch, UTC"),
    Column("state_rows", "int64", True),
    Column("state_memory_bytes", "int64", True),
    Column("rows_dropped_by_watermark", "int64", True, "input rows later than the watermark"),
    Column("duplicates_dropped", "int64", True),
    Column("sources", "json", True, "per source: description, end_offset, input_rows"),
)
PROGRESS_FIELDS = tuple(c.name for c in PROGRESS)

# The `late` view: rows the watermark dropped, counted per batch. Spark's stateful
# operators drop them without handing them out, so the lake records the counts
# (from the progress records), never the rows themselves.
# The `late` view (lake.reader): the trades that came after their bar was written, each of them
# revised into its bar from lake/trades (`jobs.revisions`): lake/trades' rows with late = true.
LATE: tuple[Column, ...] = tuple(c for c in TRADES if c.name != "late")


def volatility_columns(windows_s: tuple[int, ...]) -> tuple[Column, ...]:
    """lake/volatility's columns: `volatility_values`, plus their revision."""
    return revisable(volatility_values(windows_s))


def volatility_values(windows_s: tuple[int, ...]) -> tuple[Column, ...]:
    """One row per bar, with trailing volatility for each configured window (what the job computes)."""
    per_window = []
    for w in windows_s:
        per_window += [
            Column(f"volatility_{w}s", "double", True, f"sample stdev (ddof 1) of log returns in (t-{w}s, t]"),
            Column(f"realized_vol_{w}s", "double", True, "sqrt(sum r^2) over the same bars"),
            Column(f"returns_{w}s", "int64", True, "log returns in the window (null in rows written without it)"),
        ]
    return (
        Column("exchange", "string", False),
        Column("symbol", "string", False, "partition column"),
        Column("window_start", "timestamp", False, "the bar's second, t"),
        Column("close", PRICE_TYPE, False),
        Column("log_return", "double", True, "ln(close / previous bar's close); null for a key's first bar"),
        *per_window,
        Column("date", "date", False, "partition column: UTC date of window_start"),
    )


DEFAULT_VOLATILITY_WINDOWS_S = (60, 300)
VOLATILITY = volatility_columns(DEFAULT_VOLATILITY_WINDOWS_S)

# lake/predictions, written by `python -m models score`: append-only; a later scoring run that
# knows the outcome appends the row again, and the `predictions` view keeps the newest per key.
PREDICTIONS: tuple[Column, ...] = (
    Column("model_id", "string", False, "the run that trained the model"),
    Column("task", "string", False, "vol_spike | direction"),
    Column("exchange", "string", False),
    Column("symbol", "string", False, "partition column"),
    Column("time", "timestamp", False, "features use bars up to this time, UTC"),
    Column("horizon_s", "int64", False),
    Column("probability", "double", False, "P(spike) or P(price up) over (time, time + horizon]"),
    Column("outcome", "double", True, "1 or 0 once time + horizon has passed, else null"),
    Column("scored_at", "timestamp", False),
    Column("date", "date", False, "partition column: UTC date of time"),
)

_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


def decimal_parts(type_: str) -> tuple[int, int] | None:
    match = _DECIMAL.fullmatch(type_)
    return (int(match[1]), int(match[2])) if match else None


def arrow_type(type_: str) -> pa.DataType:
    if dec := decimal_parts(type_):
        return pa.decimal128(*dec)
    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
        "double": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }[type_]


def duckdb_type(type_: str) -> str:
    if dec := decimal_parts(type_):
        return f"DECIMAL({dec[0]},{dec[1]})"
    return {
        "string": "VARCHAR",
        "int64": "BIGINT",
        "bool": "BOOLEAN",
        "double": "DOUBLE",
        "timestamp": "TIMESTAMPTZ",
        "date": "DATE",
        "json": "JSON",  # DuckDB-only: nested progress details
    }[type_]


def spark_type(type_: str) -> DataType:
    from pyspark.sql import types as T

    if dec := decimal_parts(type_):
        return T.DecimalType(*dec)
    return {
        "string": T.StringType(),
        "int64": T.LongType(),
        "bool": T.BooleanType(),
        "double": T.DoubleType(),
        "timestamp": T.TimestampType(),
        "date": T.DateType(),
    }[type_]


def to_arrow(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type), c.nullable) for c in columns])


def to_spark(columns: tuple[Column, ...]) -> StructType:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(c.name, spark_type(c.type), c.nullable) for c in columns])


def column_names(columns: tuple[Column, ...]) -> list[str]:
    return [c.name for c in columns]
