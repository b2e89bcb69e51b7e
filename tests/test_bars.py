"""The bar logic on small static DataFrames (chispa), one SparkSession for all."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.schema import OHLC, PRICE_TYPE, QTY_TYPE, to_spark
from tests.support.bars import one_second_bars

UTC = dt.UTC
T0 = 1_723_161_600_000  # 2024-08-09 00:00:00 UTC


def _trades(spark: SparkSession, rows: list[tuple[str, str, int, int, bool]]) -> DataFrame:
    """rows: (price, quantity, timestamp ms, trade_id, is_buyer_maker) for binance BTCUSDT."""
    frame = spark.createDataFrame(
        [("trade", "binance", "BTCUSDT", p, q, ts, tid, m) for p, q, ts, tid, m in rows],
        "type string, exchange string, symbol string, price string, quantity string, "
        "timestamp long, trade_id long, is_buyer_maker boolean",
    )
    return frame.select(
        "type",
        "exchange",
        "symbol",
        F.col("price").cast(PRICE_TYPE).alias("price"),
        F.col("quantity").cast(QTY_TYPE).alias("quantity"),
        "timestamp",
        "trade_id",
        "is_buyer_maker",
        F.timestamp_millis("timestamp").alias("event_time"),
        F.lit(0).cast("long").alias("kafka_partition"),
    )


def _bar(
    start_ms: int, o: str, h: str, lo: str, c: str, vol: str, quote: str, n: int, buy: str, first: int, last: int
) -> tuple[object, ...]:
    start = dt.datetime.fromtimestamp(start_ms / 1000, UTC)
    return (
        "binance",
        "BTCUSDT",
        start,
        start + dt.timedelta(seconds=1),
        Decimal(o),
        Decimal(h),
        Decimal(lo),
        Decimal(c),
        Decimal(vol),
        Decimal(quote),
        float(Decimal(quote)) / float(Decimal(vol)),
        n,
        Decimal(buy),
        Decimal(vol) - Decimal(buy),
        first,
        last,
        start.date(),
    )


def _expected(spark: SparkSession, bars: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(bars, to_spark(OHLC))


def test_output_schema_is_the_lake_schema(spark: SparkSession) -> None:
    bars = one_second_bars(_trades(spark, [("1", "1", T0, 1, False)]))
    assert [(f.name, f.dataType) for f in bars.schema] == [(f.name, f.dataType) for f in to_spark(OHLC)]


def test_ties_in_time_resolve_by_trade_id(spark: SparkSession) -> None:
    # Three trades in the same millisecond, arriving in shuffled order.
    trades = _trades(
        spark, [("101", "1", T0 + 5, 12, True), ("100", "2", T0 + 5, 11, False), ("102", "3", T0 + 5, 13, False)]
    )
    expected = _expected(spark, [_bar(T0, "100", "102", "100", "102", "6", "607", 3, "5", 11, 13)])
    assert_df_equality(one_second_bars(trades), expected, ignore_row_order=True, ignore_nullable=True)


def test_second_boundaries_split_bars(spark: SparkSession) -> None:
    trades = _trades(
        spark, [("10", "1", T0 + 999, 1, False), ("11", "1", T0 + 1000, 2, True), ("12", "1", T0 + 1999, 3, True)]
    )
    expected = _expected(
        spark,
        [
            _bar(T0, "10", "10", "10", "10", "1", "10", 1, "1", 1, 1),
            _bar(T0 + 1000, "11", "12", "11", "12", "2", "23", 2, "0", 2, 3),
        ],
    )
    assert_df_equality(one_second_bars(trades), expected, ignore_row_order=True, ignore_nullable=True)


def test_gap_between_bars_gives_no_empty_bar(spark: SparkSession) -> None:
    trades = _trades(spark, [("10", "1", T0, 1, False), ("10", "1", T0 + 5000, 2, False)])
    starts = [r.window_start for r in one_second_bars(trades).orderBy("window_start").collect()]
    assert [s.astimezone(UTC) for s in starts] == [
        dt.datetime.fromtimestamp(T0 / 1000, UTC),
        dt.datetime.fromtimestamp((T0 + 5000) / 1000, UTC),
    ]


def test_decimal_sums_are_exact(spark: SparkSession) -> None:
    # 0.1 + 0.2 is not 0.3 in binary floating point; it is in the lake.
    trades = _trades(spark, [("0.10000000", "0.10000000", T0, 1, False), ("0.20000000", "0.20000000", T0 + 1, 2, True)])
    row = one_second_bars(trades).collect()[0]
    assert row.volume == Decimal("0.3")
    assert row.quote_volume == Decimal("0.05")
    assert row.buy_volume == Decimal("0.1") and row.sell_volume == Decimal("0.2")


def test_midnight_bar_is_dated_by_its_start(spark: SparkSession) -> None:
    trades = _trades(spark, [("1", "1", T0 - 1, 1, False), ("1", "1", T0, 2, False)])
    dates = sorted(str(r.date) for r in one_second_bars(trades).collect())
    assert dates == ["2024-08-08", "2024-08-09"]


def test_a_single_trade_is_a_whole_bar(spark: SparkSession) -> None:
    trades = _trades(spark, [("61837.63000000", "0.02000000", T0 + 250, 7, True)])
    expected = _expected(
        spark, [_bar(T0, "61837.63", "61837.63", "61837.63", "61837.63", "0.02", "1236.7526", 1, "0", 7, 7)]
    )
    assert_df_equality(one_second_bars(trades), expected, ignore_row_order=True, ignore_nullable=True)
