"""Kafka feed events (gaps, disconnects, backfills, health) -> lake/feed_events rows, or rejects.

With them in the lake, a missing bar can be told apart: inside a `gap` or `disconnect`
window it means "no data"; outside every such window it means "no trades".
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.schema import (
    FEED_EVENT,
    FEED_EVENT_BACKFILL,
    FEED_EVENT_DISCONNECT,
    FEED_EVENT_GAP,
    FEED_EVENT_HEALTH,
    FEED_EVENT_SEQUENCE_GAP,
    FEED_EVENTS_TABLE,
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    SCHEMA_VERSION,
    column_names,
)
from jobs.trades import decode_json_values, is_valid

KINDS = (FEED_EVENT_GAP, FEED_EVENT_SEQUENCE_GAP, FEED_EVENT_DISCONNECT, FEED_EVENT_BACKFILL, FEED_EVENT_HEALTH)


def parse_feed_events(kafka_rows: DataFrame) -> DataFrame:
    """Kafka rows -> the feed-event columns, Kafka coordinates, raw value and a reject reason (null if valid)."""
    rows = decode_json_values(kafka_rows, FEED_EVENT)
    ts = F.col("ingest_ts")
    reason = (
        F.when(F.col("raw").isNull(), F.lit("empty_value"))
        .when(~F.col("_is_object"), F.lit("malformed_json"))
        .when(F.col("v").isNull() | (F.col("v") != SCHEMA_VERSION), F.lit("unsupported_version"))
        .when(F.col("kind").isNull(), F.lit("missing_kind"))
        .when(~F.col("kind").isin(*KINDS), F.lit("unknown_kind"))
        .when(F.col("exchange").isNull() | (F.trim("exchange") == ""), F.lit("missing_exchange"))
        .when(ts.isNull(), F.lit("missing_ingest_ts"))
        .when((ts < MIN_TIMESTAMP_MS) | (ts > MAX_TIMESTAMP_MS), F.lit("absurd_timestamp"))
    )
    return rows.select("*", reason.alias("reason")).drop("_is_object")


def accepted_feed_events(events: DataFrame) -> DataFrame:
    """Valid feed events in the lake table's column order."""
    event_time = F.timestamp_millis("ingest_ts")
    table = events.where(is_valid()).select(
        *column_names(FEED_EVENT), event_time.alias("event_time"), F.to_date(event_time).alias("date")
    )
    return table.select(*column_names(FEED_EVENTS_TABLE))
