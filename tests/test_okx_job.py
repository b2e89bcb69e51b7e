"""OKX end to end: its real capture replayed into Kafka, the real job, bars equal to the reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lake
from ingest.frames import frames_to_records, read_frames
from tests.support.data import DATA
from tests.support.job import run_job
from tests.support.kafka_helpers import consume, fresh_topics
from tests.support.reference import reference_bars

pytestmark = pytest.mark.integration

CAPTURE = DATA / "okx" / "OKX.ws.1.0"


def test_okx_capture_replayed_through_the_job_gives_the_reference_bars(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    replayed = subprocess.run(
        [sys.executable, "-m", "ingest", "replay", str(CAPTURE), "--topic", settings.kafka.topic,
         "--bootstrap-servers", kafka],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic},
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 69 trades" in replayed.stdout
    dead = [r.value for r in consume(kafka, settings.kafka.dlq_topic)]
    assert sorted({d["reason"] for d in dead}) == ["not_spot_instrument"] and len(dead) == 5

    job = run_job(
        "--bootstrap-servers", kafka, "--topic", settings.kafka.topic, "--lake", str(tmp_path / "lake"),
        "--feed-events-topic", settings.kafka.feed_events_topic,
        "--checkpoints", str(tmp_path / "checkpoints"), "--trigger", "available-now",
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-5000:]

    records = list(frames_to_records(read_frames(CAPTURE, "cryptofeed"), lambda frame, exc: None))
    expected = reference_bars(records).sort_values(["exchange", "symbol", "window_start"]).reset_index(drop=True)
    result = lake.connect(tmp_path / "lake").sql("SELECT * FROM ohlc ORDER BY exchange, symbol, window_start")
    actual = pd.DataFrame(result.fetchall(), columns=[d[0] for d in result.description])
    assert len(actual) == len(expected) > 5
    for column in expected.columns:
        left, right = list(actual[column]), list(expected[column])
        if column == "window_start":
            left = [pd.Timestamp(x).tz_convert("UTC") for x in left]
        assert left == right, f"column {column} differs"
    assert actual["trade_count"].sum() == 69 and set(actual["exchange"]) == {"okx"}
