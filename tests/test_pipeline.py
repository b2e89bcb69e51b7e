"""End to end, all real: replay CLI -> Kafka broker -> spark-submit job -> Parquet -> DuckDB.

The lake must equal bars computed independently by pandas from the same tape:
real Binance trades, plus duplicates, out-of-order neighbours and invalid rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lake
from ingest import side_records
from ingest.tape import read_tape, write_tape
from tests.support.data import SAMPLE
from tests.support.job import run_job
from tests.support.messy_tape import INVALID, messy_tape
from tests.support.reference import reference_bars, reference_candles, reference_volatility, valid_trades

pytestmark = pytest.mark.integration

# What the ingestor publishes on crypto.feed_events (see tests/test_live_ingest.py for where they come from).
FEED_EVENTS = [
    side_records.gap("binance", "BTCUSDT", 3735683300, 3735683310, 1723161290000, 1723161291000, 1723161295000),
    side_records.disconnect("binance", "BTCUSDT", 3735683310, 1723161291000, 1723161296000, "closed", 1723161296000),
    side_records.health("binance", 40.0, 120.5, 35.2, 1, 1723161297000),
    side_records.backfill("binance", "BTCUSDT", 3735683300, 3735683310, 11, "complete", 1723161298000),
]


@pytest.fixture(scope="module")
def pipeline(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from infra.kafka_local import LocalKafka

    work = tmp_path_factory.mktemp("pipeline")
    topic, feed_topic = "test.pipeline", "test.pipeline.feed_events"
    host, port = kafka.split(":")
    LocalKafka(work, host, int(port)).ensure_topics([topic], partitions=4)
    LocalKafka(work, host, int(port)).ensure_topics([feed_topic], partitions=1)
    tape, n_invalid = messy_tape(list(read_tape(SAMPLE)))
    good = work / "tape.ndjson"
    write_tape(good, tape)
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest",
            "replay",
            str(good),
            "--topic",
            topic,
            "--bootstrap-servers",
            kafka,
            "--speed",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    # The replay CLI only reads JSON tapes, so send a malformed value with a bare producer.
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka)
    producer.send(topic, key=b"binance:BTCUSDT", value=b"{not json").get(timeout=30)
    for event in FEED_EVENTS:
        producer.send(feed_topic, key=b"binance:BTCUSDT", value=side_records.to_json(event)).get(timeout=30)
    producer.send(feed_topic, value=b'{"v":1,"kind":"rumour","exchange":"binance","ingest_ts":1723161300000}').get(30)
    producer.close()

    job = run_job(
        "--bootstrap-servers",
        kafka,
        "--topic",
        topic,
        "--feed-events-topic",
        feed_topic,
        "--lake",
        str(work / "lake"),
        "--checkpoints",
        str(work / "checkpoints"),
        "--trigger",
        "available-now",
    )
    assert job.returncode == 0, job.stderr[-5000:]
    return {"tape": tape, "lake": work / "lake", "invalid": n_invalid + 1, "replay_out": replayed.stdout}


def test_lake_bars_equal_pandas_reference(pipeline: dict[str, Any]) -> None:
    expected = reference_bars(pipeline["tape"]).sort_values(["exchange", "symbol", "window_start"])
    con = lake.connect(pipeline["lake"])
    # fetchall, not .df(): DuckDB's pandas conversion turns DECIMAL into float64.
    result = con.sql("SELECT * FROM ohlc ORDER BY exchange, symbol, window_start")
    names = [d[0] for d in result.description]
    actual = pd.DataFrame(result.fetchall(), columns=names)
    assert len(actual) == len(expected) > 600
    expected = expected.reset_index(drop=True)
    for column in expected.columns:
        left, right = list(actual[column]), list(expected[column])
        if column == "window_start":
            left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
        assert left == right, f"column {column} differs"
    # Every accepted trade is in exactly one bar; duplicates counted once.
    assert actual["trade_count"].sum() == len(valid_trades(pipeline["tape"])) == 15_863
    assert (actual["window_end"] - actual["window_start"]).eq(pd.Timedelta(seconds=1)).all()
    assert set(actual["date"].astype(str)) == {"2024-08-08", "2024-08-09"}  # the tape crosses midnight


def test_the_trades_table_holds_every_accepted_trade_once(pipeline: dict[str, Any]) -> None:
    """lake/trades equals the reference's deduplicated accepted trades: ids, exact decimals, times."""
    want = valid_trades(pipeline["tape"])
    expected = sorted(
        (r.exchange, r.symbol, int(r.trade_id), r.price, r.quantity, int(r.timestamp), bool(r.is_buyer_maker),
         int(r.ingest_ts))
        for r in want.itertuples()
    )  # fmt: skip
    con = lake.connect(pipeline["lake"])
    rows = con.sql(
        "SELECT exchange, symbol, trade_id, price, quantity, epoch_ms(event_time), is_buyer_maker, "
        "epoch_ms(ingest_time) FROM trades"
    ).fetchall()
    assert len(rows) == len(expected) == 15_863
    assert sorted(rows) == expected
    coordinates = con.sql(
        "SELECT count(DISTINCT (kafka_partition, kafka_offset)), count(*) FILTER (WHERE late), "
        "count(*) FILTER (WHERE date <> CAST(event_time AT TIME ZONE 'UTC' AS DATE)) FROM trades"
    ).fetchall()
    assert coordinates == [(len(expected), 0, 0)]


def test_volatility_equals_pandas_rolling_reference(pipeline: dict[str, Any]) -> None:
    windows = (60, 300)
    bars = reference_bars(pipeline["tape"])
    expected = reference_volatility(bars, windows).sort_values(["exchange", "symbol", "window_start"])
    result = lake.connect(pipeline["lake"]).sql("SELECT * FROM volatility ORDER BY exchange, symbol, window_start")
    names = [d[0] for d in result.description]
    actual = pd.DataFrame(result.fetchall(), columns=names)
    assert len(actual) == len(expected) == len(bars)
    assert [pd.Timestamp(x) for x in actual["window_start"]] == list(expected["window_start"])
    assert list(actual["close"]) == list(bars.sort_values(["exchange", "symbol", "window_start"])["close"])
    for w in windows:
        assert list(actual[f"returns_{w}s"]) == list(expected[f"returns_{w}s"])
    for column in ["log_return"] + [f"{k}_{w}s" for w in windows for k in ("volatility", "realized_vol")]:
        left = actual[column].astype(float).to_numpy()
        right = expected[column].to_numpy()
        assert (np.isnan(left) == np.isnan(right)).all(), column
        both = ~np.isnan(right)
        assert np.allclose(left[both], right[both], rtol=1e-9, atol=0), column
    # Real numbers, not all nulls: most bars have a 60 s volatility.
    assert actual["volatility_60s"].notna().mean() > 0.9


@pytest.mark.parametrize("step_s", [5, 60, 3600])
def test_candles_macro_equals_candles_from_the_trades(pipeline: dict[str, Any], step_s: int) -> None:
    """candles() over the 1-second bars equals candles computed from the tape's trades directly."""
    expected = reference_candles(pipeline["tape"], step_s)
    con = lake.connect(pipeline["lake"])
    for symbol in ("BTCUSDT", "ETHUSDT"):
        result = con.execute(
            f"SELECT * EXCLUDE (bucket_end, bars) FROM candles(?, INTERVAL {step_s} SECOND, "
            "TIMESTAMPTZ '2024-08-08', TIMESTAMPTZ '2024-08-10', venue := 'binance')",
            [symbol],
        )
        names = [d[0] for d in result.description]
        actual = pd.DataFrame(result.fetchall(), columns=names)
        want = expected[expected["symbol"] == symbol].reset_index(drop=True)
        assert len(actual) == len(want) > 0
        for column in want.columns:
            left, right = list(actual[column]), list(want[column])
            if column == "bucket_start":
                left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
            if column == "vwap":
                assert np.allclose(left, right, rtol=1e-12, atol=0), column
            else:
                assert left == right, f"{symbol} {step_s}s: column {column} differs"
    # The exchange filter: no such venue, no candles.
    none = con.sql(
        "SELECT count(*) FROM candles('BTCUSDT', INTERVAL 1 MINUTE, TIMESTAMPTZ '2024-08-08', "
        "TIMESTAMPTZ '2024-08-10', venue := 'coinbase')"
    )
    assert none.fetchall() == [(0,)]


def test_realized_volatility_macro_equals_pandas(pipeline: dict[str, Any]) -> None:
    bars = reference_bars(pipeline["tape"])
    returns = reference_volatility(bars, (60,))
    returns = returns[returns["symbol"] == "BTCUSDT"].dropna(subset=["log_return"])
    bucket = returns["window_start"].dt.floor("5min")
    grouped = returns.groupby(bucket)["log_return"]
    expected = pd.DataFrame(
        {"n": grouped.count(), "std": grouped.std(ddof=1), "rv": np.sqrt(grouped.apply(lambda r: (r * r).sum()))}
    )
    result = (
        lake.connect(pipeline["lake"])
        .sql(
            "SELECT bucket_start, returns, volatility, realized_vol, realized_vol_annualized FROM realized_volatility("
            "'BTCUSDT', INTERVAL 5 MINUTE, TIMESTAMPTZ '2024-08-08', TIMESTAMPTZ '2024-08-10') WHERE returns > 0"
        )
        .fetchall()
    )
    assert [pd.Timestamp(r[0]) for r in result] == list(expected.index)
    assert [r[1] for r in result] == list(expected["n"])
    std = np.array([np.nan if r[2] is None else r[2] for r in result])
    assert np.allclose(std, expected["std"].to_numpy(), rtol=1e-9, equal_nan=True)
    assert np.allclose([r[3] for r in result], expected["rv"].to_numpy(), rtol=1e-9)
    # Annualized: realized variance scaled from 5 minutes to a 365-day year.
    assert np.allclose([r[4] for r in result], expected["rv"].to_numpy() * np.sqrt(365 * 24 * 12), rtol=1e-9)


def test_invalid_records_land_in_rejects_with_reasons(pipeline: dict[str, Any]) -> None:
    con = lake.connect(pipeline["lake"])
    reasons = dict(con.sql("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall())
    expected = {reason: 1 for reason, _ in INVALID} | {"malformed_json": 1, "unknown_kind": 1}
    assert reasons == expected
    raw = con.sql("SELECT raw FROM rejects WHERE reason = 'price_precision'").fetchall()[0][0]
    assert json.loads(raw)["price"] == "61837.123456789"


def test_feed_events_land_in_the_lake(pipeline: dict[str, Any]) -> None:
    con = lake.connect(pipeline["lake"])
    result = con.sql("SELECT * EXCLUDE (event_time, date) FROM feed_events ORDER BY ingest_ts, kind")
    names = [d[0] for d in result.description]
    assert [dict(zip(names, row, strict=True)) for row in result.fetchall()] == FEED_EVENTS
    assert con.sql("SELECT DISTINCT date::VARCHAR FROM feed_events").fetchall() == [("2024-08-08",)]  # 23:54 UTC


def test_lake_partitions_by_symbol_and_date(pipeline: dict[str, Any]) -> None:
    folders = {
        p.relative_to(pipeline["lake"] / "ohlc").as_posix() for p in (pipeline["lake"] / "ohlc").glob("symbol=*/date=*")
    }
    assert folders == {f"symbol={s}/date={d}" for s in ("BTCUSDT", "ETHUSDT") for d in ("2024-08-08", "2024-08-09")}


def test_lake_cli_reads_bars(pipeline: dict[str, Any]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lake",
            "--lake",
            str(pipeline["lake"]),
            "sql",
            "SELECT symbol, sum(trade_count) AS n FROM ohlc GROUP BY symbol ORDER BY symbol",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "BTCUSDT" in out and "9757" in out and "ETHUSDT" in out and "6106" in out


def test_replay_reports_counts(pipeline: dict[str, Any]) -> None:
    trades = sum(1 for r in pipeline["tape"] if r.get("type") == "trade")
    assert f"replayed {trades} trades and 1 heartbeats" in pipeline["replay_out"]


def test_job_refuses_bad_arguments(tmp_path: Path) -> None:
    bad = run_job("--watermark", "soon", timeout=120)
    assert bad.returncode == 2
    # spark-submit's PythonRunner merges the driver's stderr into stdout.
    assert "expected e.g. '5 seconds'" in bad.stdout + bad.stderr


def test_the_job_names_a_missing_topic_before_starting_spark(kafka: str, tmp_path: Path) -> None:
    job = run_job(
        "--bootstrap-servers", kafka, "--topic", "no.such.topic", "--lake", str(tmp_path / "lake"),
        "--checkpoints", str(tmp_path / "cp"), "--trigger", "available-now", timeout=120,
    )  # fmt: skip
    assert job.returncode == 2
    assert "topic no.such.topic does not exist" in job.stdout + job.stderr
    assert not (tmp_path / "cp").exists()  # nothing started


def test_the_job_reads_and_parses_the_trades_topic_once(pipeline: dict[str, Any]) -> None:
    """Spark counts a source's rows once per plan branch that scans it: the bars and the rejects
    must share one read (`jobs.trades.read_once`), so the count equals the records in the topic."""
    records = [
        json.loads(line)
        for path in (pipeline["lake"] / "_progress").glob("date=*/ohlc.ndjson")
        for line in path.read_text().splitlines()
    ]
    scanned = sum(s["input_rows"] for r in records for s in r["sources"] if "test.pipeline]" in s["description"])
    final = json.loads(max(records, key=lambda r: r["batch_id"])["sources"][0]["end_offset"])
    in_topic = sum(int(o) for o in final["test.pipeline"].values())
    assert scanned == in_topic == len(pipeline["tape"]) + 1 + 1  # the tape, its closing heartbeat, "{not json"
