"""lake.connect on an empty lake: empty views with the documented types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lake
from core.schema import OHLC_TABLE, REJECTS, duckdb_type


def test_empty_lake_has_typed_empty_views(tmp_path: Path) -> None:
    con = lake.connect(tmp_path / "no-lake-here")
    for table, columns in (("ohlc", OHLC_TABLE), ("rejects", REJECTS)):
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


def _newest_naively_and_by_the_view(con: Any) -> tuple[list[Any], list[Any]]:
    """Each market's newest bar by a plain QUALIFY over ohlc, and by `latest_bars`."""
    columns = "exchange, symbol, window_start, close"
    naive = con.sql(
        f"SELECT {columns} FROM ohlc "
        "QUALIFY row_number() OVER (PARTITION BY exchange, symbol ORDER BY window_start DESC) = 1 ORDER BY symbol"
    ).fetchall()
    return naive, con.sql(f"SELECT {columns} FROM latest_bars ORDER BY symbol").fetchall()


def test_latest_bars_reads_only_each_symbols_newest_partition(tmp_path: Path) -> None:
    import datetime as dt

    from tests.support.lake_builder import SinkLake, ohlc_rows

    sink = SinkLake(tmp_path / "lake")
    start = dt.datetime(2026, 1, 1, 23, 59, tzinfo=dt.UTC)
    sink.write_batch(ohlc_rows("BBBUSD", start, 30))  # day 1 only
    sink.write_batch(ohlc_rows("AAAUSD", start, 120))  # days 1 and 2
    con = lake.connect(tmp_path / "lake")
    naive, latest = _newest_naively_and_by_the_view(con)
    assert latest == naive and len(latest) == 2
    # Older partitions are not read: the view's files are the newest partitions' only.
    from lake.reader import newest_bar_files, snapshot_table

    chosen = newest_bar_files(snapshot_table(tmp_path / "lake", "ohlc"))
    assert sorted(Path(f).parent.name + "/" + Path(f).parent.parent.name for f in chosen.paths) == [
        "date=2026-01-01/symbol=BBBUSD",
        "date=2026-01-02/symbol=AAAUSD",
    ]
    # Within the newest partition, the log's stats choose the newest file of each exchange.
    later = start + dt.timedelta(seconds=120)
    newer = sink.write_batch(ohlc_rows("AAAUSD", later, 5, price=200.0))
    chosen = newest_bar_files(snapshot_table(tmp_path / "lake", "ohlc"))
    assert [f for f in chosen.paths if "AAAUSD" in f] == [str(newer[0])]
    latest = lake.connect(tmp_path / "lake").sql("SELECT symbol, window_start FROM latest_bars ORDER BY 1").fetchall()
    assert latest[0] == ("AAAUSD", later + dt.timedelta(seconds=4))


def test_latest_bars_with_two_exchanges_in_a_file_reads_every_file_it_may_need(tmp_path: Path) -> None:
    import datetime as dt

    from tests.support.lake_builder import SinkLake, ohlc_rows

    sink = SinkLake(tmp_path / "lake")
    start = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    old = ohlc_rows("BTCUSD", start, 10)
    for row in old[5:]:
        row["exchange"] = "coinbase"  # one file with two exchanges, coinbase's newest bar at :09
    sink.write_batch(old)
    sink.write_batch(ohlc_rows("BTCUSD", start + dt.timedelta(seconds=20), 3))  # binance only, newer
    got = lake.connect(tmp_path / "lake").sql("SELECT exchange, window_start FROM latest_bars ORDER BY 1").fetchall()
    assert got == [("binance", start + dt.timedelta(seconds=22)), ("coinbase", start + dt.timedelta(seconds=9))]


def test_latest_bars_reads_a_long_file_from_its_newest_rows_and_stays_exact(tmp_path: Path) -> None:
    import datetime as dt

    from lake.reader import newest_bar_files, snapshot_table
    from tests.support.lake_builder import SinkLake, ohlc_rows

    sink = SinkLake(tmp_path / "lake")
    start = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    sink.write_batch(ohlc_rows("AAAUSD", start, 600))  # ten minutes in one file: its newest bar at 10:09:59
    sink.write_batch(ohlc_rows("BBBUSD", start + dt.timedelta(minutes=5), 30))  # newest at 10:05:29
    chosen = newest_bar_files(snapshot_table(tmp_path / "lake", "ohlc"))
    assert chosen.other == [] and len(chosen.bounded) == 2
    assert chosen.since == start + dt.timedelta(minutes=5, seconds=29)  # the older of the two newest bars
    con = lake.connect(tmp_path / "lake")
    naive, latest = _newest_naively_and_by_the_view(con)
    assert latest == naive
    assert [r[2] for r in latest] == [start + dt.timedelta(seconds=599), start + dt.timedelta(minutes=5, seconds=29)]


def test_progress_counts_the_rows_each_batch_dropped_as_late(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "_progress" / "date=2026-01-01"
    folder.mkdir(parents=True)
    base = {
        "query": "ohlc", "input_rows": 10, "input_rows_per_s": 1.0, "processed_rows_per_s": 2.0,
        "batch_duration_ms": 900, "state_rows": 5, "state_memory_bytes": 100, "duplicates_dropped": 0,
        "sources": [{"description": "kafka", "end_offset": {"t": {"0": 10}}, "input_rows": 10}],
    }  # fmt: skip
    records = [
        {**base, "batch_id": 0, "timestamp": "2026-01-01T00:00:00.000Z", "watermark": "1970-01-01T00:00:00.000Z",
         "rows_dropped_by_watermark": 0},
        {**base, "batch_id": 1, "timestamp": "2026-01-01T00:00:05.000Z", "watermark": "2026-01-01T00:00:01.000Z",
         "rows_dropped_by_watermark": 3},
    ]  # fmt: skip
    (folder / "ohlc.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    con = lake.connect(tmp_path)
    rows = con.sql(
        "SELECT query, batch_id, timestamp, rows_dropped_by_watermark FROM progress WHERE rows_dropped_by_watermark > 0"
    ).fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("ohlc", 1) and rows[0][3] == 3
    assert str(rows[0][2]) == "2026-01-01 00:00:05+00:00"
    types = {
        d[0]: str(t)
        for d, t in zip(
            con.sql("SELECT * FROM progress").description, con.sql("SELECT * FROM progress").types, strict=True
        )
    }
    assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE" and types["batch_id"] == "BIGINT"
    assert types["sources"] == "JSON"


def test_the_late_view_lists_the_late_trades_of_lake_trades(tmp_path: Path) -> None:
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    from core.schema import LATE, TRADES, to_arrow
    from lake import delta

    at = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    ticks = [
        {"exchange": "binance", "symbol": "BTCUSDT", "trade_id": i, "price": Decimal("100.5"),
         "quantity": Decimal("0.001"), "event_time": at, "is_buyer_maker": False, "ingest_time": at,
         "kafka_partition": 0, "kafka_offset": i, "late": i % 2 == 1, "date": at.date()}
        for i in range(4)
    ]  # fmt: skip
    delta.append_rows(tmp_path, "trades", pa.Table.from_pylist(ticks, schema=to_arrow(TRADES)), TRADES)
    late = lake.connect(tmp_path).sql("SELECT * FROM late ORDER BY trade_id")
    assert [d[0] for d in late.description] == [c.name for c in LATE]
    assert [r[2] for r in late.fetchall()] == [1, 3]
