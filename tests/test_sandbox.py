"""Read-only SQL for people: lake views only, each kind of escape refused with a reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import lake
from lake.sandbox import QueryRefused, run_query
from tests.lake_builder import SinkLake, ohlc_rows


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    sink = SinkLake(tmp_path / "lake")
    sink.write_batch(ohlc_rows("AAAUSD", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 50))
    (tmp_path / "secret.csv").write_text("a\n1\n")
    return tmp_path / "lake"


def test_a_select_over_the_views_runs(lake_dir: Path) -> None:
    con = lake.connect(lake_dir)
    result = run_query(con, "SELECT symbol, count(*) AS n FROM ohlc GROUP BY symbol")
    assert result.table.to_pylist() == [{"symbol": "AAAUSD", "n": 50}]
    assert not result.truncated
    macro = run_query(
        con, "FROM candles('AAAUSD', INTERVAL 10 SECOND, TIMESTAMPTZ '2026-01-01', TIMESTAMPTZ '2026-01-02')"
    )
    assert macro.table.num_rows == 5


def test_rows_are_capped(lake_dir: Path) -> None:
    result = run_query(lake.connect(lake_dir), "SELECT * FROM ohlc", max_rows=7)
    assert result.table.num_rows == 7 and result.truncated


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COPY (SELECT * FROM ohlc) TO '{lake}/ohlc/evil.parquet'", "only SELECT"),  # inside the lake
        ("COPY (SELECT 1) TO '{tmp}/out.csv'", "only SELECT"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{lake}/x.csv'", "only SELECT"),
        ("CREATE TABLE t AS SELECT 1", "only SELECT"),
        ("INSERT INTO ohlc SELECT * FROM ohlc", "only SELECT"),
        ("DROP VIEW ohlc", "only SELECT"),
        ("ATTACH '{tmp}/x.duckdb'", "only SELECT"),
        ("SET threads = 1", "only SELECT"),
        ("PRAGMA enable_profiling", "only SELECT"),
        ("INSTALL httpfs", "only SELECT"),
        ("EXPORT DATABASE '{tmp}/dump'", "only SELECT"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELEC 1", "does not parse"),
        ("SELECT * FROM read_csv('{tmp}/secret.csv')", "Permission"),  # outside the lake
        ("SELECT * FROM read_text('/etc/hostname')", "Permission"),
        ("SELECT * FROM query('COPY (SELECT 1) TO ''{lake}/q.csv''')", "single SELECT"),
        ("SELECT set_config('threads', '1')", "does not exist"),
        ("SELECT * FROM read_blob('{tmp}/secret.csv')", "Permission"),
    ],
)
def test_everything_but_reading_the_lake_is_refused(lake_dir: Path, sql: str, reason: str) -> None:
    con = lake.connect(lake_dir)
    text = sql.format(lake=lake_dir, tmp=lake_dir.parent)
    with pytest.raises(QueryRefused, match=reason):
        run_query(con, text)
    # Nothing was written anywhere.
    assert not list(lake_dir.parent.rglob("*.csv"))[1:]
    assert not (lake_dir / "ohlc" / "evil.parquet").exists() and not (lake_dir / "q.csv").exists()
    assert not (lake_dir.parent / "dump").exists() and not (lake_dir.parent / "x.duckdb").exists()
    # ...and the connection still works, settings unchanged.
    assert run_query(con, "SELECT current_setting('enable_external_access') AS v").table.to_pylist() == [{"v": False}]


def test_a_long_query_is_stopped(lake_dir: Path) -> None:
    con = lake.connect(lake_dir)
    with pytest.raises(QueryRefused, match="longer than"):
        run_query(con, "SELECT count(*) FROM range(10000000000) a, range(1000) b", timeout_s=0.5)
    assert run_query(con, "SELECT 1 AS one").table.to_pylist() == [{"one": 1}]


def test_a_writable_connection_is_opt_in(lake_dir: Path) -> None:
    con = lake.connect(lake_dir, read_only=False)
    out = lake_dir.parent / "export.csv"
    con.execute(f"COPY (SELECT * FROM ohlc) TO '{out}'")
    assert len(out.read_text().splitlines()) == 51
