"""lake.connect on an empty lake: empty views with the documented types."""

from __future__ import annotations

from pathlib import Path

import lake
from lake.schema import OHLC, REJECTS, duckdb_type


def test_empty_lake_has_typed_empty_views(tmp_path: Path) -> None:
    con = lake.connect(tmp_path / "no-lake-here")
    for table, columns in (("ohlc", OHLC), ("rejects", REJECTS)):
        result = con.sql(f"SELECT * FROM {table}")
        assert result.fetchall() == []
        assert [(d[0], str(t)) for d, t in zip(result.description, result.types, strict=True)] == [
            (c.name, duckdb_type(c.type).replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c in columns
        ]


def test_session_time_zone_is_utc(tmp_path: Path) -> None:
    con = lake.connect(tmp_path)
    assert con.sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]


def test_every_table_and_progress_has_a_view_on_an_empty_lake(tmp_path: Path) -> None:
    con = lake.connect(tmp_path)
    for view in ("ohlc", "rejects", "feed_events", "volatility", "progress"):
        assert con.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
    names = [d[0] for d in con.sql("SELECT * FROM volatility").description]
    assert {"log_return", "volatility_60s", "realized_vol_300s", "returns_60s"} <= set(names)
