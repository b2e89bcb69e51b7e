"""Kafka rows to typed trade events, each either valid or carrying a reject reason."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.schema import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    PRICE_TYPE,
    QTY_TYPE,
    RECORD_HEARTBEAT,
    RECORD_TRADE,
    SCHEMA_VERSION,
    WIRE_TRADE,
    to_spark,
)
from core.schema import Column as SchemaColumn

_BARRIER = "_parse_barrier"
_CORRUPT = "_corrupt_record"
PARSED_METRIC = "parsed"  # observed per batch: records read from the trades topic
# What `accepted` and `rejected` read from the parsed events; the raw value and key only for rejects.
ACCEPTED_COLUMNS = (
    "type", "exchange", "symbol", "price_dec", "quantity_dec", "timestamp", "trade_id", "is_buyer_maker", "event_time",
    "kafka_partition", "kafka_offset", "ingest_ts",
)  # fmt: skip
REJECT_COLUMNS = ("reason", "raw", "kafka_key", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
REJECT_ONLY_COLUMNS = ("raw", "kafka_key")

# Parse wide first, so that a value with too many digits is told apart from
# one that is not a number at all; then compare with the lake's exact type.
_WIDE = "decimal(38,18)"


def _decimal_reason(name: str) -> Column:
    """Why the `name` column is not a valid lake decimal; uses `_<name>_wide` and `<name>_dec`."""
    raw, wide, narrow = F.col(name), F.col(f"_{name}_wide"), F.col(f"{name}_dec")
    return (
        F.when(raw.isNull(), F.lit(f"missing_{name}"))
        .when(wide.isNull(), F.lit(f"bad_{name}"))
        .when(wide <= 0, F.lit(f"nonpositive_{name}"))
        .when(narrow.isNull(), F.lit(f"{name}_overflow"))
        .when(wide != narrow, F.lit(f"{name}_precision"))
    )


def decode_json_values(kafka_rows: DataFrame, columns: tuple[SchemaColumn, ...]) -> DataFrame:
    """Kafka rows -> `raw`, the Kafka coordinates, `_is_object` and one column per schema field.

    A value that is not a JSON object leaves every field null and `_is_object` false.
    """
    raw = F.col("value").cast("string")
    schema = to_spark((*columns, SchemaColumn(_CORRUPT, "string")))
    record = F.col("_record")
    # One JSON parse per row. A value Spark cannot read into the schema (not JSON, not an
    # object, or a field of the wrong JSON type) lands whole in the corrupt-record column,
    # with every field null; only for those rare rows is the value parsed again, as a map, to
    # tell an object with a mistyped field (its fields count as missing) from a non-object.
    is_object = (
        F.when(record.isNull(), F.lit(False))
        .when(record[_CORRUPT].isNull(), F.lit(True))
        .otherwise(F.from_json(F.col("raw"), "map<string,string>").isNotNull())
    )
    return (
        kafka_rows.select(
            raw.alias("raw"),
            F.col("key").cast("string").alias("kafka_key"),
            F.col("topic").alias("kafka_topic"),
            F.col("partition").cast("long").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
            F.from_json(raw, schema, {"columnNameOfCorruptRecord": _CORRUPT}).alias("_record"),
            # See `is_valid`: keeps the JSON parsed once per row.
            F.spark_partition_id().alias(_BARRIER),
        )
        .select("*", is_object.alias("_is_object"), *(record[c.name].alias(c.name) for c in columns))
        .drop("_record")
    )


def is_valid() -> Column:
    """`reason IS NULL`, written so that the optimizer keeps the filter above the parse.

    A plain `reason IS NULL` is pushed below the projection that parses the JSON, inlining
    `from_json` once per field the reason reads: a dozen JSON parses per row, 10x slower.
    The filter cannot move below a projection with a non-deterministic column, and naming
    that column here keeps it from being pruned.
    """
    return F.col("reason").isNull() & (F.col(_BARRIER) >= 0)  # always true; the optimizer cannot tell


def is_rejected() -> Column:
    return F.col("reason").isNotNull() & (F.col(_BARRIER) >= 0)


def parse(kafka_rows: DataFrame) -> DataFrame:
    """Kafka source rows -> wire columns, typed price/quantity, event_time, reason.

    `reason` is null for a record the job accepts (a valid trade or heartbeat).
    The raw value and the Kafka coordinates are kept for the rejects table.
    """
    # Each cast once, in its own projection: inlined into the reason's CASE (as it once
    # was) they made one generated method too long to JIT-compile, and parsing 5x slower.
    rows = decode_json_values(kafka_rows, WIRE_TRADE).select(
        "*",
        F.col("price").try_cast(_WIDE).alias("_price_wide"),
        F.col("quantity").try_cast(_WIDE).alias("_quantity_wide"),
        F.timestamp_millis("timestamp").alias("event_time"),
    )
    # Each text read as a number once; narrowing decimal to decimal is cheap. A value with too
    # many decimals rounds (so differs from the wide one), one with too many digits gives null.
    rows = rows.select(
        "*",
        F.col("_price_wide").try_cast(PRICE_TYPE).alias("price_dec"),
        F.col("_quantity_wide").try_cast(QTY_TYPE).alias("quantity_dec"),
    )
    ts = F.col("timestamp")
    trade_reason = (
        F.when(F.col("exchange").isNull() | (F.trim("exchange") == ""), F.lit("missing_exchange"))
        .when(F.col("symbol").isNull() | (F.trim("symbol") == ""), F.lit("missing_symbol"))
        .when(ts.isNull(), F.lit("missing_timestamp"))
        .when((ts < MIN_TIMESTAMP_MS) | (ts > MAX_TIMESTAMP_MS), F.lit("absurd_timestamp"))
        .when(F.col("trade_id").isNull(), F.lit("missing_trade_id"))
        .when(F.col("is_buyer_maker").isNull(), F.lit("missing_is_buyer_maker"))
        .otherwise(F.coalesce(_decimal_reason("price"), _decimal_reason("quantity")))
    )
    heartbeat_reason = (
        F.when(F.col("exchange").isNull() | (F.trim("exchange") == ""), F.lit("missing_exchange"))
        .when(ts.isNull(), F.lit("missing_timestamp"))
        .when((ts < MIN_TIMESTAMP_MS) | (ts > MAX_TIMESTAMP_MS), F.lit("absurd_timestamp"))
    )
    reason = (
        F.when(F.col("raw").isNull(), F.lit("empty_value"))
        .when(~F.col("_is_object"), F.lit("malformed_json"))
        .when(F.col("type").isNull(), F.lit("missing_type"))
        .when(F.col("v").isNull() | (F.col("v") != SCHEMA_VERSION), F.lit("unsupported_version"))
        .when(F.col("type") == RECORD_TRADE, trade_reason)
        .when(F.col("type") == RECORD_HEARTBEAT, heartbeat_reason)
        .otherwise(F.lit("unknown_type"))
    )
    rows = rows.select("*", reason.alias("reason")).drop("_is_object", "_price_wide", "_quantity_wide")
    # Only an accepted record's time may move the watermark (a rejected trade can carry any time).
    return rows.withColumn("event_time", F.when(F.col("reason").isNull(), F.col("event_time")))


def read_once(events: DataFrame, partitions: int) -> DataFrame:
    """`events` cut so that the bars and the rejects reuse one Kafka read and one parse.

    Spark plans each branch of a union from its own copy of the source: each branch would
    read the topic and parse every record again, and the parse is the costliest step. Spark
    does reuse an identical exchange (shuffle) that two branches share. Three things make the
    branches' subtrees identical here:
    - the shuffle is by the dedup key with the state store's partition count, so the dedup
      uses it as is (no second shuffle);
    - the metric node above it (`observe`, per batch in the query's progress) names every
      column, so column pruning cannot trim one branch's copy differently;
    - and it stops the branches' filters from being pushed below the shuffle.
    Only the columns either branch reads cross the shuffle, and the raw value and key only
    for rejected records.
    """
    rejected_only = F.col("reason").isNotNull()
    slim = events.select(
        *ACCEPTED_COLUMNS,
        *(F.when(rejected_only, F.col(c)).alias(c) for c in REJECT_ONLY_COLUMNS),
        *(c for c in REJECT_COLUMNS if c not in REJECT_ONLY_COLUMNS and c not in ACCEPTED_COLUMNS),
        _BARRIER,
    )
    columns = [F.col(c) for c in slim.columns]
    shuffled = slim.repartition(partitions, "exchange", "symbol", "trade_id")
    return shuffled.observe(
        PARSED_METRIC, F.count(F.lit(1)).alias("records"), F.max(F.xxhash64(*columns)).alias("_all_columns")
    )


def accepted(events: DataFrame) -> DataFrame:
    """Valid trades and heartbeats, typed: the stream the watermark is taken from."""
    renamed = {"price_dec": "price", "quantity_dec": "quantity"}
    return events.where(is_valid()).select(*(F.col(c).alias(renamed.get(c, c)) for c in ACCEPTED_COLUMNS))


def tick_rows(events: DataFrame) -> DataFrame:
    """Every accepted trade as a lake/trades row (but `late`, which `jobs.tick_writer` decides):
    repeats and late trades included; the writer keeps each trade's first copy."""
    trades = accepted(events).where(F.col("type") == RECORD_TRADE)
    return trades.select(
        "exchange", "symbol", "trade_id", "price", "quantity", "event_time", "is_buyer_maker",
        F.timestamp_millis("ingest_ts").alias("ingest_time"), "kafka_partition", "kafka_offset",
        F.to_date("event_time").alias("date"),
    )  # fmt: skip


def rejected(events: DataFrame) -> DataFrame:
    """Everything the job refuses, with the reason and where it came from."""
    return events.where(is_rejected()).select(*REJECT_COLUMNS, F.to_date("kafka_timestamp").alias("date"))
