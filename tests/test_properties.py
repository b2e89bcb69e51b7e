"""Invariants over generated inputs (hypothesis), through the job's own parse and bar functions."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.trades import accepted, parse, rejected
from tests.support.bars import one_second_bars

T0 = 1_723_161_600_000
KAFKA_SCHEMA = (
    "value binary, key binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)

prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999"), places=8)
bad_prices = st.sampled_from(["0", "-1", "abc", "1.123456789", None, "NaN", "12345678901"])


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 40))
    out = []
    for i in range(n):
        record = {
            "type": "trade", "v": 1, "exchange": "binance", "symbol": draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])),
            "price": str(draw(prices)), "quantity": str(draw(prices)),
            "timestamp": T0 + draw(st.integers(0, 5_000)), "trade_id": i, "is_buyer_maker": draw(st.booleans()),
        }  # fmt: skip
        if draw(st.integers(0, 9)) == 0:
            record["price"] = draw(bad_prices)
        out.append(record)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records())
def test_bar_invariants_and_row_accounting(spark: SparkSession, recs: list[dict[str, Any]]) -> None:
    when = dt.datetime(2024, 8, 9, tzinfo=dt.UTC)
    kafka = spark.createDataFrame(
        [(json.dumps(r).encode(), b"k", "t", 0, i, when, 0) for i, r in enumerate(recs)], KAFKA_SCHEMA
    )
    events = parse(kafka).cache()
    good, bad = accepted(events), rejected(events)
    n_good, n_bad = good.count(), bad.count()
    assert n_good + n_bad == len(recs)  # every row is accepted or rejected, never both, never neither
    bars = one_second_bars(good).collect()
    assert sum(b.trade_count for b in bars) == n_good
    total_qty = good.agg(F.sum("quantity")).collect()[0][0] or Decimal(0)
    assert sum((b.volume for b in bars), Decimal(0)) == total_qty
    for b in bars:
        assert b.low <= b.open <= b.high and b.low <= b.close <= b.high
        assert b.buy_volume + b.sell_volume == b.volume
        assert b.window_end - b.window_start == dt.timedelta(seconds=1)
    events.unpersist()
