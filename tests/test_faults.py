"""Short versions of the fault campaign (`make bench` runs the full one: bench/faults.py)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from tests.faults import frames, records, sql
from tests.support.lake_builder import SinkLake, ohlc_rows


def test_fuzzed_frames_never_crash_the_ingestor_and_each_is_accounted_for() -> None:
    logging.disable(logging.WARNING)  # one warning per dead letter
    try:
        row, reasons, outcomes = frames.campaign(6_000)
    finally:
        logging.disable(logging.NOTSET)
    assert row.survived and row.lost == 0, row.line()
    assert outcomes["dead letter"] > 0.9 * 6_000 and len(reasons) >= 15
    assert sum(outcomes.values()) == 6_000


def test_generated_statements_neither_escape_the_sandbox_nor_change_the_lake(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    SinkLake(lake_dir).write_batch(ohlc_rows("AAAUSD", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 50))
    row, outcomes = sql.campaign(lake_dir, 2_000)
    assert row.survived, row.line()
    assert outcomes["accepted"] > 50 and sum(outcomes.values()) == 2_000  # reads of the views do run


@pytest.mark.integration
def test_fuzzed_records_all_land_in_rejects_and_the_job_survives(kafka: str, tmp_path: Path) -> None:
    row, reasons = records.campaign(kafka, tmp_path, 2_000)
    assert row.survived and row.lost == 0 and row.duplicated == 0, row.line()
    assert "" not in reasons and None not in reasons


@pytest.mark.integration
def test_a_broker_killed_during_live_ingest_loses_and_repeats_no_trade(tmp_path: Path) -> None:
    from tests.faults import broker_kills

    row = broker_kills.kill_during_ingest(tmp_path, kills=1)
    assert row.survived and row.lost == 0 and row.duplicated == 0, row.line()
