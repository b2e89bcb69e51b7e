"""One-second OHLCV bars from accepted trade events."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.schema import BAR_MS, OHLC, QTY_TYPE, QUOTE_VOLUME_TYPE, RECORD_HEARTBEAT, RECORD_TRADE, column_names
from jobs.bar_closer import LAST_EVENT_TIME, LAST_PARTITION

BAR_DURATION = f"{BAR_MS // 1000} second"
DEDUP_KEY = ["exchange", "symbol", "trade_id"]


def unique_trades(events: DataFrame) -> DataFrame:
    """Trades only (heartbeats have done their job: moving the watermark), each once.

    Expects `events` to carry a watermark on event_time; a trade id seen again
    within the watermark is dropped.
    """
    # Spark's optimizer pushes a filter below withWatermark when the filter does
    # not reference the event-time column; `type = 'trade'` alone would drop
    # heartbeats before the watermark sees them. One predicate that mentions
    # event_time (CASE WHEN is not split like AND) keeps the filter above it.
    is_trade = F.when(F.col("event_time").isNotNull(), F.col("type") == RECORD_TRADE).otherwise(F.lit(False))
    return events.where(is_trade).dropDuplicatesWithinWatermark(DEDUP_KEY)


def heartbeats(events: DataFrame) -> DataFrame:
    """The accepted heartbeats' Kafka partitions and times: with the bar updates' newest trades,
    they tell the sink how far the watermark moved (`jobs.bar_closer`)."""
    return events.where(F.col("type") == RECORD_HEARTBEAT).select("kafka_partition", "event_time")


def bar_updates(trades: DataFrame) -> DataFrame:
    """Aggregate trades into `core.schema.OHLC` rows, plus each window's newest event time and
    that trade's Kafka partition (LAST_EVENT_TIME, LAST_PARTITION).

    The stream job runs this in update mode: each batch yields the windows it changed, with
    their aggregate so far, and `jobs.bar_closer` releases each one once the watermark passes it.

    Open and close are the first and last trade by (timestamp, trade_id), so
    ties in time resolve the same way on every run. Sums are exact decimals,
    so they do not depend on how the input was split into batches.
    """
    order = F.struct("timestamp", "trade_id")
    zero = F.lit(0).cast(QTY_TYPE)
    quote = (F.col("price") * F.col("quantity")).cast(QUOTE_VOLUME_TYPE)
    bars = trades.groupBy(F.window("event_time", BAR_DURATION), "exchange", "symbol").agg(
        F.min_by("price", order).alias("open"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        F.max_by("price", order).alias("close"),
        F.sum("quantity").alias("volume"),
        F.sum(quote).alias("quote_volume"),
        F.count(F.lit(1)).alias("trade_count"),
        F.sum(F.when(~F.col("is_buyer_maker"), F.col("quantity")).otherwise(zero)).alias("buy_volume"),
        F.sum(F.when(F.col("is_buyer_maker"), F.col("quantity")).otherwise(zero)).alias("sell_volume"),
        F.min_by("trade_id", order).alias("first_trade_id"),
        F.max_by("trade_id", order).alias("last_trade_id"),
        F.max("event_time").alias(LAST_EVENT_TIME),
        F.max_by("kafka_partition", "event_time").alias(LAST_PARTITION),
    )
    return bars.select(
        "exchange",
        "symbol",
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        F.col("quote_volume").cast(QUOTE_VOLUME_TYPE).alias("quote_volume"),
        F.try_divide(F.col("quote_volume").cast("double"), F.col("volume").cast("double")).alias("vwap"),
        "trade_count",
        "buy_volume",
        "sell_volume",
        "first_trade_id",
        "last_trade_id",
        F.to_date(F.col("window.start")).alias("date"),
        LAST_EVENT_TIME,
        LAST_PARTITION,
    ).select(*column_names(OHLC), LAST_EVENT_TIME, LAST_PARTITION)
