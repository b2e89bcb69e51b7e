"""The table registry: each entry is consistent, and every reader lists what it declares."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import lake
from core.schema import DEFAULT_VOLATILITY_WINDOWS_S
from core.tables import TABLES, VIEWS, record_windows, recorded_windows, table
from lake.info import format_info, lake_info


@pytest.mark.parametrize("name", list(TABLES))
def test_each_table_names_its_own_columns(name: str) -> None:
    spec = TABLES[name]
    columns = {c.name for c in spec.columns}
    used = {*spec.partition_by, spec.row_time, spec.time_column, *([spec.sort_key] if spec.sort_key else [])}
    assert used <= columns, used - columns
    assert spec.partition_by[-1] == "date" and spec.writer in ("job", "models")
    assert not (set(spec.partition_by) & {c.name for c in spec.file_columns()})


def test_windows_are_recorded_with_the_table_and_merged(tmp_path: Path) -> None:
    assert recorded_windows(tmp_path) == DEFAULT_VOLATILITY_WINDOWS_S  # nothing recorded yet
    assert record_windows(tmp_path, (30, 90)) == (30, 90)
    assert record_windows(tmp_path, (60, 30)) == (30, 60, 90)  # older files keep their columns
    names = [c.name for c in TABLES["volatility"].columns_in(tmp_path)]
    assert {"volatility_30s", "realized_vol_60s", "returns_90s"} <= set(names)


def test_every_view_and_info_row_comes_from_the_registry(tmp_path: Path) -> None:
    record_windows(tmp_path, (15,))
    con = lake.connect(tmp_path)
    views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert set(VIEWS) <= views
    assert "volatility_15s" in con.sql("SELECT * FROM volatility LIMIT 0").columns  # from the lake's record
    infos = lake_info(con, tmp_path)
    assert [i.table for i in infos] == list(TABLES)
    assert all(name in format_info(infos, dt.datetime.now(dt.UTC)) for name in TABLES)


def test_an_unknown_table_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown table 'bars'; the lake's tables are ohlc, trades, rejects"):
        table("bars")


def test_a_recorded_window_no_file_holds_reads_as_null(tmp_path: Path) -> None:
    """Windows changed (or old files expired): the view still binds, the missing column is NULL."""
    from models.synthetic import write_lake

    write_lake(tmp_path, "WALKUSD", "walk", hours=0.05)  # files with the default windows
    record_windows(tmp_path, (30,))
    rows = (
        lake.connect(tmp_path)
        .sql("SELECT count(*), count(volatility_60s), count(volatility_30s), count(returns_30s) FROM volatility")
        .fetchall()[0]
    )
    assert rows[0] == 180 and rows[1] > 100 and rows[2] == rows[3] == 0
