"""The job's refusals of a deleted or damaged checkpoint, without Spark: the checks and messages
`jobs.stream_ohlc` and `jobs.lake_sink` use (the real job's runs: tests/test_faults_disk.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.settings import load
from jobs.lake_sink import STREAM_TABLES, LakeSink, SinkStateError
from jobs.stream_ohlc import check_checkpoint_matches_lake, stopped_because
from tests.support.lake_builder import SinkLake, ohlc_rows


def test_a_lake_with_batches_and_no_checkpoint_is_refused_with_the_choices(tmp_path: Path) -> None:
    lake_dir, checkpoint = tmp_path / "lake", tmp_path / "checkpoints" / "lake"
    settings = load(lake_path=str(lake_dir))
    check_checkpoint_matches_lake(settings, checkpoint)  # an empty lake: a first start
    SinkLake(lake_dir).write_batch(ohlc_rows("AAAUSD", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 5))
    with pytest.raises(SystemExit) as refused:
        check_checkpoint_matches_lake(settings, checkpoint)
    text = str(refused.value)
    assert f"its checkpoint {checkpoint} is missing" in text and "(ohlc)" in text
    assert "--starting-offsets latest" in text and "make clean" in text and str(lake_dir / "_progress") in text
    check_checkpoint_matches_lake(settings.with_overrides(stream_starting_offsets="latest"), checkpoint)  # as asked
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "offsets" / "0").write_text("v1")
    check_checkpoint_matches_lake(settings, checkpoint)  # a checkpoint with offsets: a restart


def test_a_damaged_spark_checkpoint_names_the_folder_and_the_choices(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / "lake"
    settings = load(lake_path=str(tmp_path / "lake"))
    error = (
        f"[MALFORMED_LOG_FILE] Log file was malformed: failed to read correct log version from {checkpoint}/offsets/7."
    )
    text = stopped_because(error, checkpoint, settings)
    assert text.startswith("stream_ohlc: the query stopped: [MALFORMED_LOG_FILE]")
    assert f"The checkpoint {checkpoint} is damaged" in text and "--starting-offsets latest" in text
    other = stopped_because("LakeWriteFailed: no space left on the lake's disk", checkpoint, settings)
    assert (
        other == "stream_ohlc: the query stopped: no space left on the lake's disk"
    )  # not called a damaged checkpoint


def test_a_damaged_sink_state_is_refused_naming_the_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / "lake"
    sink = LakeSink(tmp_path / "lake", checkpoint, STREAM_TABLES, (60,), watermark_delay_ms=5000)
    sink.state_dir.mkdir(parents=True)
    damaged = sink.state_dir / "3.json"
    damaged.write_text("{not json")
    with pytest.raises(SinkStateError, match=f"{damaged}, the sink's state after batch 3, is unreadable"):
        sink._state_before(4)
