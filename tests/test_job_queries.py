"""The job's queries, started in-process from `build_queries` over temporary folders (no spark-submit).

One test per query: its wiring (sources, transformations, sink, checkpoint, trigger, progress)
over a messy slice of the real sample tape, compared with the independent reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lake
from core.settings import REPO_ROOT, interval_ms
from core.tables import JOB_TABLES, TABLES, recorded_windows
from ingest import side_records
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.tape import read_tape
from tests.support.kafka_helpers import fresh_topics
from tests.support.messy_tape import messy_tape
from tests.support.reference import reference_bars, reference_volatility, valid_trades

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
WINDOWS = (30, 90)  # not the settings' default: readers must take them from the lake


def _frame(sql: str, lake_dir: Path) -> pd.DataFrame:
    result = lake.connect(lake_dir).sql(sql)
    return pd.DataFrame(result.fetchall(), columns=[d[0] for d in result.description])


def test_every_job_table_has_a_branch() -> None:
    from jobs.lake_sink import STREAM_TABLES, VOLATILITY_TABLE
    from jobs.stream_ohlc import SIDE_TABLES

    assert {"ohlc", *SIDE_TABLES, VOLATILITY_TABLE} == set(JOB_TABLES) == {*STREAM_TABLES, VOLATILITY_TABLE}


def test_the_lake_query_in_process_equals_the_reference(spark: Any, kafka: str, tmp_path: Path) -> None:
    from jobs.progress import ProgressListener, drain_events
    from jobs.stream_ohlc import QUERY, build_queries, lake_sink

    settings = fresh_topics(kafka, tmp_path).with_overrides(
        lake_path=str(tmp_path / "lake"), checkpoint_path=str(tmp_path / "checkpoints"),
        stream_trigger="available-now", stream_volatility_windows_s=WINDOWS,
    )  # fmt: skip
    tape, invalid = messy_tape(list(read_tape(SAMPLE))[:4000])
    with Publisher(settings) as publisher:
        closing = interval_ms(settings.stream.watermark) + 1000
        replay(tape, publisher, settings.kafka.topic, closing_heartbeat_after_ms=closing, progress=False)
        event = side_records.gap("binance", "BTCUSDT", 1, 2, 1723161290000, 1723161291000, 1723161295000)
        publisher.send(settings.kafka.feed_events_topic, b"binance:BTCUSDT", side_records.to_json(event))
        publisher.flush()

    sink = lake_sink(settings)
    listener = ProgressListener(settings.lake.path, sink.late_trades)
    spark.streams.addListener(listener)
    try:
        queries = build_queries(spark, settings, sink)
        assert list(queries) == [QUERY]
        query = queries[QUERY].start()
        query.awaitTermination(300)
        assert query.exception() is None
        drain_events(spark)  # progress reaches the listener on Spark's thread, after the batch
    finally:
        spark.streams.removeListener(listener)

    lake_dir = tmp_path / "lake"
    bars = reference_bars(tape).sort_values(["exchange", "symbol", "window_start"]).reset_index(drop=True)
    actual = _frame("SELECT * FROM ohlc ORDER BY exchange, symbol, window_start", lake_dir)
    assert len(actual) == len(bars) > 100
    for column in bars.columns:
        left = list(actual[column])
        if column == "window_start":
            left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
        assert left == list(bars[column]), f"ohlc.{column} differs"
    assert actual["trade_count"].sum() == len(valid_trades(tape))

    assert recorded_windows(lake_dir) == WINDOWS  # recorded with the table, read back by the views
    vol = _frame("SELECT * FROM volatility ORDER BY exchange, symbol, window_start", lake_dir)
    expected = reference_volatility(bars, WINDOWS).sort_values(["exchange", "symbol", "window_start"])
    assert [c.name for c in TABLES["volatility"].columns_in(lake_dir)] == list(vol.columns)
    for column in ["log_return"] + [f"{k}_{w}s" for w in WINDOWS for k in ("volatility", "realized_vol")]:
        left, right = vol[column].astype(float).to_numpy(), expected[column].to_numpy()
        assert (np.isnan(left) == np.isnan(right)).all(), column
        assert np.allclose(left[~np.isnan(right)], right[~np.isnan(right)], rtol=1e-9, atol=0), column

    rejects = _frame("SELECT reason FROM rejects", lake_dir)
    assert len(rejects) == invalid
    assert len(_frame("SELECT * FROM feed_events", lake_dir)) == 1
    progress = _frame("SELECT query, input_rows FROM progress", lake_dir)
    assert set(progress["query"]) == {QUERY} and progress["input_rows"].sum() >= len(tape)


def _run_once(spark: Any, settings: Any) -> str:
    """The job's query over what the topics hold (available-now), in-process; its executed plan."""
    from jobs.stream_ohlc import QUERY, build_queries, lake_sink

    query = build_queries(spark, settings, lake_sink(settings))[QUERY].start()
    query.awaitTermination(300)
    assert query.exception() is None
    return str(query._jsq.streamingQuery().lastExecution().executedPlan().toString())


def test_a_restart_keeps_the_checkpoints_shuffle_partitions(spark: Any, kafka: str, tmp_path: Path) -> None:
    """A checkpoint started under 2 shuffle partitions, restarted under 1: the query reads on with 2
    (its state store's split), and the one shuffle of the trades stays one."""
    from jobs.stream_ohlc import SHUFFLE_PARTITIONS, checkpoint_dir, checkpoint_shuffle_partitions

    settings = fresh_topics(kafka, tmp_path).with_overrides(
        lake_path=str(tmp_path / "lake"), checkpoint_path=str(tmp_path / "checkpoints"),
        stream_trigger="available-now",
    )  # fmt: skip
    records = list(read_tape(SAMPLE))[:3000]
    closing = interval_ms(settings.stream.watermark) + 1000
    before = spark.conf.get(SHUFFLE_PARTITIONS)
    plans = []
    try:
        # The first run leaves its newest windows open in the state store; the restart closes them.
        for partitions, part, heartbeat in ((2, records[:1500], None), (1, records[1500:], closing)):
            spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
            with Publisher(settings) as publisher:
                replay(part, publisher, settings.kafka.topic, closing_heartbeat_after_ms=heartbeat, progress=False)
            plans.append(_run_once(spark, settings))
    finally:
        spark.conf.set(SHUFFLE_PARTITIONS, before)

    assert checkpoint_shuffle_partitions(checkpoint_dir(settings)) == 2
    # Each shuffle's count: "Exchange hashpartitioning(<keys>, <count>), <reason>, [plan_id=...]".
    counts = [re.findall(r"Exchange hashpartitioning\(.*?, (\d+)\), ", plan) for plan in plans]
    assert len(counts[1]) == len(counts[0]) > 0 and set(counts[1]) == {"2"}
    bars = _frame("SELECT * FROM ohlc", tmp_path / "lake")
    assert len(bars) == len(reference_bars(records)) and bars["trade_count"].sum() == len(valid_trades(records))


def test_the_checkpoints_shuffle_partitions_come_from_its_newest_offset_log_entry(tmp_path: Path) -> None:
    from jobs.stream_ohlc import checkpoint_shuffle_partitions

    offsets = tmp_path / "offsets"
    assert checkpoint_shuffle_partitions(tmp_path) is None  # no batch yet: the session's count applies
    offsets.mkdir()
    for batch, partitions in ((2, 4), (10, 3)):
        metadata = {"batchWatermarkMs": 0, "conf": {"spark.sql.shuffle.partitions": str(partitions)}}
        (offsets / str(batch)).write_text(f'v1\n{json.dumps(metadata)}\n{{"t":{{"0":5}}}}\n')
    (offsets / ".10.crc").write_text("")  # Hadoop's side files are not entries
    assert checkpoint_shuffle_partitions(tmp_path) == 3  # batch 10, not "2", the last by name
    (offsets / "11").write_text("v1\n")  # no metadata: left to Spark's own check of its log
    assert checkpoint_shuffle_partitions(tmp_path) is None
