"""`lake.delta.convert_parquet_folder`: a hive-partitioned Parquet folder becomes a Delta table in place."""

from __future__ import annotations

from pathlib import Path

import duckdb
from deltalake import DeltaTable

import lake
from lake import delta


def test_a_partitioned_parquet_folder_becomes_the_ohlc_table_read_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "ohlc"
    folder.parent.mkdir()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = """
        SELECT 'binance' AS exchange, s AS symbol, TIMESTAMPTZ '2026-12-01 23:59:58' + to_seconds(i) AS window_start,
               TIMESTAMPTZ '2026-12-01 23:59:59' + to_seconds(i) AS window_end,
               (100 + i)::DECIMAL(18,8) AS open, (101 + i)::DECIMAL(18,8) AS high, (99 + i)::DECIMAL(18,8) AS low,
               (100.5 + i)::DECIMAL(18,8) AS close, 1.25::DECIMAL(28,8) AS volume,
               (125.625 + i)::DECIMAL(38,16) AS quote_volume, (100.5 + i)::DOUBLE AS vwap, 2::BIGINT AS trade_count,
               1::DECIMAL(28,8) AS buy_volume, 0.25::DECIMAL(28,8) AS sell_volume,
               (10 * i)::BIGINT AS first_trade_id, (10 * i + 1)::BIGINT AS last_trade_id,
               0::BIGINT AS revision, NULL::TIMESTAMPTZ AS revised_at,
               CAST(TIMESTAMPTZ '2026-12-01 23:59:58' + to_seconds(i) AS DATE) AS date
        FROM range(4) r(i), (VALUES ('BTCUSDT'), ('ETHUSDT')) v(s)"""
    con.execute(f"COPY ({rows}) TO '{folder}' (FORMAT parquet, PARTITION_BY (symbol, date))")
    expected = sorted(con.sql(rows).fetchall(), key=lambda r: (r[1], r[2]))

    table = delta.convert_parquet_folder(tmp_path / "lake", "ohlc")

    assert table.metadata().partition_columns == ["symbol", "date"]
    assert len(table.file_uris()) == 4  # two symbols x two dates
    assert table.metadata().configuration == delta.LogSettings.from_settings().properties()
    got = lake.connect(tmp_path / "lake").sql("SELECT * FROM ohlc ORDER BY symbol, window_start").fetchall()
    assert got == expected
    assert DeltaTable(str(folder)).to_pyarrow_table().num_rows == len(expected)
