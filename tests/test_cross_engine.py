"""The lake as other engines read it: every table reads the same through `lake.connect()`, Polars
`scan_delta`, delta-rs to Arrow and delta-spark, row for row, and ohlc equals the pandas reference.

On the real sample tape, after the job was killed with kill -9 mid-stream and restarted from its
checkpoint, then an OPTIMIZE of every table and a VACUUM with no grace (the compacted files and
the killed batch's files are gone from disk, so a reader that globbed or followed a stale list
would fail or count twice).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import lake
from core.settings import REPO_ROOT
from core.tables import JOB_TABLES
from ingest.tape import read_tape
from lake import delta
from tests.support.data import SAMPLE
from tests.support.job import job_args, job_failure, progress_lines, replay, run_job, start_job
from tests.support.kafka_helpers import fresh_topics
from tests.support.reference import reference_bars

pytestmark = pytest.mark.integration

BATCH = 4000  # offsets per micro-batch: the tape takes four batches, the kill comes after two


def _value(v: Any) -> Any:
    """One cell in a form every engine's value compares equal in (time zones, NaN, NaT, pandas' types)."""
    if v is pd.NaT:  # pandas' null timestamp (`revised_at` of a bar never revised)
        return None
    if hasattr(v, "to_pydatetime"):
        v = v.to_pydatetime()
    elif hasattr(v, "item") and not isinstance(v, decimal.Decimal):
        v = v.item()
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(v, float) and v != v:
        return None
    return v


def _rows(table: pa.Table | list[tuple[Any, ...]], columns: list[str]) -> list[tuple[Any, ...]]:
    if isinstance(table, pa.Table):
        table = [tuple(r[c] for c in columns) for r in table.select(columns).to_pylist()]
    rows = [tuple(_value(v) for v in r) for r in table]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


def _spark_read(lake_dir: Path, out: Path, tables: list[str]) -> dict[str, pa.Table]:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "engines" / "spark_read.py"), str(lake_dir), str(out), *tables],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {t: pa.ipc.open_file(str(out / f"{t}.arrow")).read_all() for t in tables}


def test_every_engine_reads_the_same_lake_after_a_kill_an_optimize_and_a_vacuum(kafka: str, tmp_path: Path) -> None:
    # One partition: batches of BATCH offsets then follow the tape's order, so no trade comes after
    # the watermark passed it (with four, one symbol's partition can fall behind the other's
    # watermark and its trades count as late, which the reference does not model).
    settings = fresh_topics(kafka, tmp_path, partitions=1)
    tape = list(read_tape(SAMPLE))
    replay(SAMPLE, kafka, settings.kafka.topic)
    lake_dir = tmp_path / "lake"
    args = job_args(kafka, settings, lake_dir, tmp_path / "checkpoints", max_offsets=BATCH)
    proc = start_job(*args)
    deadline = time.monotonic() + 180
    while proc.poll() is None and progress_lines(lake_dir, "ohlc") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    job = run_job(*args)
    assert job.returncode == 0, job_failure(job)

    cli = [sys.executable, "-m", "lake", "--lake", str(lake_dir)]
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    for step in (["compact", "--table", "all", "--before", tomorrow], ["vacuum", "--grace", "0s"]):
        done = subprocess.run([*cli, *step], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    history = DeltaTable(str(lake_dir / "ohlc")).history()
    assert {"OPTIMIZE", "VACUUM END"} <= {h["operation"] for h in history}

    tables = [t for t in JOB_TABLES if delta.is_table(lake_dir, t)]
    assert {"ohlc", "volatility"} <= set(tables)
    spark = _spark_read(lake_dir, tmp_path / "spark", tables)
    con = lake.connect(lake_dir)
    for table in tables:
        path = str(lake_dir / table)
        columns = [f.name for f in DeltaTable(path).schema().fields]
        ours = _rows(con.sql(f"SELECT {', '.join(columns)} FROM {table}").fetchall(), columns)
        assert ours, table
        # As the README's "Reading the lake from other engines" reads it.
        frame = DeltaTable(path).to_pandas()
        dataset = DeltaTable(path).to_pyarrow_dataset()
        readers = {
            "delta-rs": DeltaTable(path).to_pyarrow_table(),
            "polars": pl.scan_delta(path).collect().to_arrow(),
            "delta-spark": spark[table],
            "pandas": list(frame[columns].itertuples(index=False, name=None)),
            "duckdb over delta-rs": duckdb.connect()
            .register("dataset", dataset)
            .sql(f"SELECT {', '.join(columns)} FROM dataset")
            .fetchall(),
        }
        for name, got in readers.items():
            assert _rows(got, columns) == ours, f"{table} through {name}"

    # ohlc equals the independent reference over the tape.
    assert con.sql("SELECT count(*) FROM late").fetchall() == [(0,)]
    want = reference_bars(tape)
    ref_columns = [c for c in want.columns if c != "vwap"]
    got = _rows(con.sql(f"SELECT {', '.join(ref_columns)}, vwap FROM ohlc").fetchall(), [*ref_columns, "vwap"])
    expected = _rows(
        [tuple(_norm(v) for v in r) for r in want[[*ref_columns, "vwap"]].itertuples(index=False, name=None)],
        [*ref_columns, "vwap"],
    )
    assert len(got) > 600 and [r[:-1] for r in got] == [r[:-1] for r in expected]
    assert all(abs(a[-1] - b[-1]) <= 1e-9 * abs(b[-1]) for a, b in zip(got, expected, strict=True))


def _norm(v: Any) -> Any:
    """pandas' values as the engines give them: Timestamps as datetimes, numpy ints as ints."""
    if hasattr(v, "to_pydatetime"):
        return _value(v.to_pydatetime())
    if isinstance(v, decimal.Decimal | str):
        return v
    return v.item() if hasattr(v, "item") else v
