"""`python -m lake`: sql, info, shell, export, views, compact, vacuum."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import lake
from lake import delta
from tests.support.lake_builder import SinkLake, ohlc_rows

START = dt.datetime(2026, 1, 1, 23, 58, tzinfo=dt.UTC)


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    sink = SinkLake(tmp_path / "lake")
    for b in range(4):  # 4 batches of 60 s, one file each: 2 per date
        sink.write_batch(ohlc_rows("AAAUSD", START + dt.timedelta(seconds=60 * b), 60))
    return tmp_path / "lake"


def cli(lake_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(lake_dir), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_sql_prints_a_table(lake_dir: Path) -> None:
    out = cli(lake_dir, "sql", "SELECT symbol, count(*) AS n FROM ohlc GROUP BY symbol")
    assert out.returncode == 0, out.stderr
    assert "AAAUSD" in out.stdout and "240" in out.stdout


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_sql_writes_files(lake_dir: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    out = cli(lake_dir, "sql", "SELECT * FROM ohlc ORDER BY window_start", "--format", fmt, "--output", str(target))
    assert out.returncode == 0, out.stderr
    if fmt == "csv":
        assert len(target.read_text().splitlines()) == 241
    elif fmt == "json":
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert len(rows) == 240 and rows[0]["open"] == 100.0
    else:
        assert pq.read_table(target).num_rows == 240


def test_sql_refuses_writes_with_a_message(lake_dir: Path) -> None:
    out = cli(lake_dir, "sql", f"COPY ohlc TO '{lake_dir}/x.csv'")
    assert out.returncode == 1
    assert out.stderr.strip() == "lake: only SELECT queries may run here, not COPY"
    assert not (lake_dir / "x.csv").exists()


def test_info_reports_files_rows_and_range(lake_dir: Path) -> None:
    out = cli(lake_dir, "info")
    assert out.returncode == 0, out.stderr
    ohlc = next(line for line in out.stdout.splitlines() if line.startswith("ohlc"))
    assert ohlc.split()[:2] == ["ohlc", "4"] and " 240 " in ohlc
    assert "2026-01-01 23:58:01 .. 2026-01-02 00:02:00" in ohlc and "newest" in ohlc


def test_shell_runs_statements_from_stdin(lake_dir: Path) -> None:
    script = "SELECT count(*) AS n\nFROM ohlc;\n.tables\nDROP VIEW ohlc;\nSELECT 41 + 1 AS x;\n"
    out = cli(lake_dir, "shell", stdin=script)
    assert out.returncode == 0, out.stderr
    assert "240" in out.stdout and "candles" in out.stdout and "42" in out.stdout
    assert "only SELECT" in out.stderr


def test_export_with_a_filter(lake_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "day2.parquet"
    out = cli(lake_dir, "export", "ohlc", "--output", str(target), "--where", "date = DATE '2026-01-02'")
    assert out.returncode == 0, out.stderr
    assert pq.read_table(target).num_rows == 120


def test_views_sql_recreates_the_views_in_a_plain_duckdb(lake_dir: Path) -> None:
    out = cli(lake_dir, "views")
    con = duckdb.connect()
    con.execute(out.stdout)
    assert con.sql("SELECT count(*) FROM ohlc").fetchall() == [(240,)]
    assert con.sql(
        "SELECT count(*) FROM candles('AAAUSD', INTERVAL 1 MINUTE, TIMESTAMPTZ '2026-01-01', TIMESTAMPTZ '2026-01-03')"
    ).fetchall() == [(4,)]  # 23:58, 23:59, 00:00, 00:01


def test_compact_then_vacuum(lake_dir: Path) -> None:
    before = cli(lake_dir, "sql", "SELECT * FROM ohlc ORDER BY window_start", "--max-rows", "1000").stdout
    out = cli(lake_dir, "compact", "--before", "2026-01-02")
    assert out.returncode == 0, out.stderr
    assert "ohlc: 1 partitions before 2026-01-02 optimized, 2 files -> 1," in out.stdout
    assert cli(lake_dir, "sql", "SELECT * FROM ohlc ORDER BY window_start", "--max-rows", "1000").stdout == before
    out = cli(lake_dir, "vacuum", "--table", "ohlc", "--grace", "0s")
    assert "2 files deleted" in out.stdout  # the two the OPTIMIZE replaced
    assert cli(lake_dir, "sql", "SELECT * FROM ohlc ORDER BY window_start", "--max-rows", "1000").stdout == before
    # Time travel: the version before the OPTIMIZE named the deleted files; the newest reads the same.
    versions = [h["version"] for h in delta.open_table(lake_dir, "ohlc").history()]  # type: ignore[union-attr]
    assert cli(lake_dir, "--as-of", str(max(versions)), "sql", "SELECT count(*) FROM ohlc").returncode == 0


def test_bad_arguments_get_a_clear_error(lake_dir: Path) -> None:
    out = cli(lake_dir, "vacuum", "--older-than", "a month")
    assert out.returncode == 2 and "expected a duration like 30d" in out.stderr
    out = cli(lake_dir, "sql", "SELECT 1", "--format", "parquet")
    assert out.returncode == 2 and "needs --output" in out.stderr


def test_csv_and_json_go_to_standard_output_for_pipes(lake_dir: Path) -> None:
    query = "SELECT symbol, window_start, close FROM ohlc ORDER BY window_start LIMIT 3"
    out = cli(lake_dir, "sql", query, "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "symbol,window_start,close" and len(lines) == 4
    rows = lake.connect(lake_dir).sql(query).fetchall()
    assert [line.split(",")[2] for line in lines[1:]] == [str(r[2]) for r in rows]  # exact decimals
    out = cli(lake_dir, "sql", query, "--format", "json")
    assert out.returncode == 0 and [json.loads(x)["symbol"] for x in out.stdout.splitlines()] == [r[0] for r in rows]
