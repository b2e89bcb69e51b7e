"""Read-only SQL for people: lake views only, each kind of escape refused with a reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

import lake
from lake.sandbox import QueryRefused, run_query
from tests.support.lake_builder import SinkLake, ohlc_rows


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
        ("SELECT * FROM read_csv('{tmp}/secret.csv')", r"table function read_csv\(\) is not allowed"),  # outside
        ("SELECT * FROM read_text('/etc/hostname')", r"table function read_text\(\) is not allowed"),
        ("SELECT * FROM query('COPY (SELECT 1) TO ''{lake}/q.csv''')", r"table function query\(\) is not allowed"),
        ("SELECT set_config('threads', '1')", "does not exist"),
        ("SELECT * FROM read_blob('{tmp}/secret.csv')", r"table function read_blob\(\) is not allowed"),
        # Inside the lake folder but not table data: with the default LAKE_PATH that is the code.
        ("SELECT * FROM glob('{lake}/**')", r"table function glob\(\) is not allowed"),
        ("SELECT content FROM read_text('{lake}/settings.py')", r"table function read_text\(\) is not allowed"),
        ("FROM '{lake}/ohlc/orphan.parquet'", "only the lake's views can be read here, and '.*orphan.parquet' is not"),
        ("SELECT * FROM ohlc WHERE symbol IN (SELECT file FROM glob('{lake}/*'))", r"glob\(\) is not allowed"),
        ("WITH t AS (FROM read_parquet('{lake}/ohlc/**')) FROM t", r"read_parquet\(\) is not allowed"),
        ("FROM duckdb_settings()", r"duckdb_settings\(\) is not allowed"),
        ("FROM duckdb_views()", r"duckdb_views\(\) is not allowed"),  # their SQL names every file
        ("SELECT current_setting('allowed_directories')", r"current_setting\(\) is not allowed"),
        ("SELECT getenv('HOME')", r"getenv\(\) is not allowed"),
        ("SELECT list_transform([1], x -> (SELECT current_setting('threads')))", "current_setting"),
        ("SHOW allowed_directories", "only SHOW TABLES"),
        ("SELECT * FROM main.secret", "not one"),
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
    assert con.execute("SELECT current_setting('enable_external_access')").fetchall() == [(False,)]
    assert run_query(con, "SELECT count(*) AS n FROM ohlc").table.to_pylist() == [{"n": 50}]


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


def test_views_ctes_macros_and_show_tables_stay_allowed(lake_dir: Path) -> None:
    con = lake.connect(lake_dir)
    sql = (
        "WITH daily AS (SELECT symbol, count(*) AS n FROM ohlc GROUP BY symbol) "
        "SELECT d.symbol, d.n, l.close IS NOT NULL AS has_latest FROM daily d JOIN latest_bars l USING (symbol) "
        "CROSS JOIN range(1) r, (SELECT count(*) FROM candles('AAAUSD', INTERVAL 1 MINUTE, "
        "TIMESTAMPTZ '2026-01-01', TIMESTAMPTZ '2026-01-02')) c"
    )
    assert run_query(con, sql).table.to_pylist() == [{"symbol": "AAAUSD", "n": 50, "has_latest": True}]
    assert {"ohlc", "latest_bars"} <= set(run_query(con, "SHOW TABLES").table.column("name").to_pylist())
    assert run_query(con, "DESCRIBE ohlc").table.num_rows > 5
    assert run_query(con, "SUMMARIZE SELECT close FROM ohlc").table.num_rows == 1


def test_file_access_is_limited_to_the_tables_folders(lake_dir: Path) -> None:
    """The second layer, under the reference check: the connection itself reads no file outside
    the tables' folders, not even in the lake folder (by default, the `lake` code package)."""
    (lake_dir / "settings.py").write_text("SECRET = 1\n")
    con = lake.connect(lake_dir)
    for path in (lake_dir / "settings.py", lake_dir.parent / "secret.csv"):
        with pytest.raises(duckdb.PermissionException):
            con.sql(f"SELECT * FROM read_text('{path}')").fetchall()
    assert con.sql(f"SELECT count(*) FROM read_parquet('{lake_dir}/ohlc/**/*.parquet')").fetchall() == [(50,)]
