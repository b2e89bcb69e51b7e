"""Every kind of invalid Kafka value gets its reason; valid ones get none."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.trades import accepted, parse, rejected
from tests.support.data import DATA

# Every kind of Kafka value and the reason the job must give it (null: accepted), one per line.
CASES: list[tuple[str, str | None, str | None]] = [
    (case["case"], case["reason"], case["value"])
    for case in map(json.loads, (DATA / "trade_reasons.jsonl").read_text().splitlines())
]
GOOD: dict[str, Any] = json.loads(next(v for c, _, v in CASES if c == "valid" and v))


@pytest.fixture(scope="module")
def events(spark: SparkSession) -> DataFrame:
    rows = [
        (None if v is None else v.encode(), b"k", "t", 0, i, dt.datetime(2024, 8, 9, tzinfo=dt.UTC), 0)
        for i, (_, _, v) in enumerate(CASES)
    ]
    kafka = spark.createDataFrame(
        rows,
        "value binary, key binary, topic string, partition int, offset long, timestamp timestamp, timestampType int",
    )
    return parse(kafka)


@pytest.fixture(scope="module")
def parsed(events: DataFrame) -> list[Any]:
    return events.orderBy("kafka_offset").collect()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_reason(parsed: list[Any], index: int) -> None:
    assert parsed[index].reason == CASES[index][1]


def test_accepted_and_rejected_split_everything(events: DataFrame) -> None:
    ok, bad = accepted(events).collect(), rejected(events).collect()
    assert len(ok) + len(bad) == len(CASES)
    trade = next(r for r in ok if r.type == "trade")
    assert trade.price == Decimal("61837.63") and trade.quantity == Decimal("0.02")
    assert {r.raw for r in bad if r.reason == "malformed_json"} == {"{not json", "[1, 2]"}


# Records whose verdict depends on how JSON types meet the schema: the Python rules of the live
# bars (core.wire) must agree with Spark's on them as on every case above.
TRICKY: list[str] = [
    json.dumps({**GOOD, "price": 61837.63}),
    json.dumps({**GOOD, "price": " 61837.63 "}),
    json.dumps({**GOOD, "price": "6.1e4"}),
    json.dumps({**GOOD, "price": "Infinity"}),
    json.dumps({**GOOD, "price": "1e30"}),
    json.dumps({**GOOD, "price": "1e400"}),  # beyond Python's decimal context: found by the fault campaign
    json.dumps({**GOOD, "quantity": "-1e400"}),
    json.dumps({**GOOD, "price": "9999999999.99999999"}),
    json.dumps({**GOOD, "price": "1.000000000"}),
    json.dumps({**GOOD, "quantity": True}),
    json.dumps({**GOOD, "timestamp": "1723161255342"}),
    json.dumps({**GOOD, "timestamp": 1723161255342.0}),
    json.dumps({**GOOD, "timestamp": 1723161255342.5}),
    json.dumps({**GOOD, "trade_id": "42"}),
    json.dumps({**GOOD, "trade_id": True}),
    json.dumps({**GOOD, "is_buyer_maker": "true"}),
    json.dumps({**GOOD, "is_buyer_maker": 1}),
    json.dumps({**GOOD, "exchange": 7}),
    json.dumps({**GOOD, "exchange": "\t"}),
    json.dumps({**GOOD, "exchange": True}),
    json.dumps({**GOOD, "symbol": ["BTC"]}),
    json.dumps({**GOOD, "price": {"value": "1"}}),
    json.dumps({**GOOD, "quantity": 2}),
    json.dumps({**GOOD, "symbol": ""}),
    json.dumps({**GOOD, "v": "1"}),
    json.dumps({**GOOD, "v": 1.0}),
    json.dumps({**GOOD, "type": 5}),
    json.dumps({**GOOD, "extra": {"nested": [1]}}),
    json.dumps({"type": "heartbeat", "v": 1, "exchange": "binance", "timestamp": 99}),
    json.dumps({"type": "heartbeat", "v": 1, "exchange": "binance"}),
    '"just a string"',
    "null",
    "",
]


@pytest.fixture(scope="module")
def spark_reasons(spark: SparkSession) -> list[str | None]:
    values = [v for _, _, v in CASES] + TRICKY
    rows = [
        (None if v is None else v.encode(), b"k", "t", 0, i, dt.datetime(2024, 8, 9, tzinfo=dt.UTC), 0)
        for i, v in enumerate(values)
    ]
    kafka = spark.createDataFrame(
        rows,
        "value binary, key binary, topic string, partition int, offset long, timestamp timestamp, timestampType int",
    )
    return [r.reason for r in parse(kafka).orderBy("kafka_offset").collect()]


@pytest.mark.parametrize("index", range(len(CASES) + len(TRICKY)))
def test_live_bar_rules_give_the_jobs_verdict(spark_reasons: list[str | None], index: int) -> None:
    """core.wire (the live bars' rules) and jobs.trades (the Spark job's) agree, record by record."""
    from core.wire import Accepted, judge_value

    value = ([v for _, _, v in CASES] + TRICKY)[index]
    verdict = judge_value(None if value is None else value.encode())
    python_reason = None if isinstance(verdict, Accepted) else verdict
    assert python_reason == spark_reasons[index], value
