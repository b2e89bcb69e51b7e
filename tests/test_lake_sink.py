"""The job's sink without Spark: each batch's tables committed exactly once, through crashes and restarts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import jobs.lake_sink as lake_sink
import lake
from core.schema import DEFAULT_VOLATILITY_WINDOWS_S, OHLC, OHLC_TABLE, REJECTS, to_arrow
from core.tables import TABLES
from jobs.bar_closer import LAST_EVENT_TIME, LAST_PARTITION
from jobs.lake_sink import BAR_UPDATES, HEARTBEATS, STREAM_TABLES, LakeSink
from lake import delta

BARS_TABLES = {"ohlc": TABLES["ohlc"].columns}  # a sink of the bars alone, with volatility
SIDE_TABLES = {name: STREAM_TABLES[name] for name in ("rejects", "feed_events")}

WINDOWS = DEFAULT_VOLATILITY_WINDOWS_S
DELAY_MS = 5000
T0 = dt.datetime(2026, 12, 2, 0, 0, tzinfo=dt.UTC)


def _bar(symbol: str, second: int, close: str) -> dict[str, Any]:
    start = T0 + dt.timedelta(seconds=second)
    price = Decimal(close)
    return {
        "exchange": "binance", "symbol": symbol, "window_start": start,
        "window_end": start + dt.timedelta(seconds=1), "open": price, "high": price, "low": price,
        "close": price, "volume": Decimal(1), "quote_volume": price, "vwap": float(price), "trade_count": 1,
        "buy_volume": Decimal(1), "sell_volume": Decimal(0), "first_trade_id": second, "last_trade_id": second,
        "date": start.date(),
    }  # fmt: skip


def _batch(bars: list[dict[str, Any]], rejects: list[dict[str, Any]] | None = None) -> pa.Table:
    """One micro-batch as `tables_frame` hands it over: a struct column per branch, null in other
    rows. Its bars are updates whose newest trade is the batch's newest event, and a heartbeat
    one watermark delay after their end closes them all in the same batch."""
    updates_type = pa.struct(
        [*to_arrow(OHLC), pa.field(LAST_EVENT_TIME, pa.timestamp("us", "UTC")), pa.field(LAST_PARTITION, pa.int64())]
    )
    heartbeats_type = pa.struct([("kafka_partition", pa.int64()), ("event_time", pa.timestamp("us", "UTC"))])
    rejects_type = pa.struct(list(to_arrow(REJECTS)))
    schema = pa.schema([(BAR_UPDATES, updates_type), (HEARTBEATS, heartbeats_type), ("rejects", rejects_type)])
    rows: list[dict[str, Any]] = [
        {BAR_UPDATES: {**b, LAST_EVENT_TIME: b["window_start"], LAST_PARTITION: 0}} for b in bars
    ]
    if bars:
        beat = max(b["window_end"] for b in bars) + dt.timedelta(milliseconds=DELAY_MS)
        rows.append({HEARTBEATS: {"kafka_partition": 0, "event_time": beat}})
    rows += [{"rejects": r} for r in rejects or []]
    return pa.Table.from_pylist(rows, schema=schema)


def _batches(n: int) -> list[pa.Table]:
    closes = ["100", "101", "99.5", "102", "101.25", "100.75", "103"]
    return [
        _batch([_bar(symbol, 2 * i + k, closes[(i + k + j) % len(closes)]) for k in (0, 1) for j, symbol in
                enumerate(("BTCUSDT", "ETHUSDT"))])
        for i in range(n)
    ]  # fmt: skip


def _sink(root: Path) -> LakeSink:
    return LakeSink(root / "lake", root / "checkpoint", BARS_TABLES, WINDOWS, DELAY_MS)


def _snapshot(lake_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = lake.connect(lake_dir)
    return {t: sorted(con.sql(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ("ohlc", "volatility")}


def test_replayed_batches_are_not_written_twice(tmp_path: Path) -> None:
    batches = _batches(4)
    sink = _sink(tmp_path)
    for n, batch in enumerate(batches):
        assert sink.write(batch, n) == {"ohlc": 4, "volatility": 4}
    before = _snapshot(tmp_path / "lake")
    restarted = _sink(tmp_path)  # Spark re-runs the last batch after a restart
    assert restarted.write(batches[-1], 3) == {}
    assert _snapshot(tmp_path / "lake") == before
    assert len(before["ohlc"]) == len(before["volatility"]) == 16


def test_a_crash_between_tables_then_a_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(6)
    clean = _sink(tmp_path / "clean")
    for n, batch in enumerate(batches):
        clean.write(batch, n)

    crashed_root = tmp_path / "crashed"
    sink = _sink(crashed_root)
    for n, batch in enumerate(batches[:3]):
        sink.write(batch, n)
    real_append = delta.append

    def crash_on_ohlc(table: Any, *args: Any, **kwargs: Any) -> bool:
        if table.metadata().name == "ohlc":  # committed last in a batch
            raise KeyboardInterrupt("killed after volatility was committed")
        return real_append(table, *args, **kwargs)

    monkeypatch.setattr(delta, "append", crash_on_ohlc)
    with pytest.raises(KeyboardInterrupt):
        sink.write(batches[3], 3)
    monkeypatch.setattr(delta, "append", real_append)
    assert not (crashed_root / "checkpoint" / "lake_sink" / "state" / "3.json").exists()

    restarted = _sink(crashed_root)
    assert restarted.write(batches[3], 3) == {"ohlc": 4}  # volatility of batch 3 was already committed
    for n, batch in enumerate(batches[4:], start=4):
        restarted.write(batch, n)
    assert _snapshot(crashed_root / "lake") == _snapshot(tmp_path / "clean" / "lake")


def test_each_batch_is_one_commit_per_table_with_the_batch_as_its_transaction(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    for n, batch in enumerate(_batches(25)):
        sink.write(batch, n)
    for name in ("ohlc", "volatility"):
        table = delta.open_table(tmp_path / "lake", name)
        assert table is not None
        assert table.transaction_version(sink.app_id) == 24
        writes = [h for h in table.history() if h["operation"] == "WRITE"]
        assert len(writes) == 25  # one commit per batch
        assert len(table.file_uris()) == 25 * 2  # one file per symbol per batch
    # delta-rs checkpoints the log every delta.checkpointInterval (10) commits
    log_dir = tmp_path / "lake" / "ohlc" / delta.LOG_DIR
    assert any(p.name.endswith(".checkpoint.parquet") for p in log_dir.iterdir())
    assert lake.connect(tmp_path / "lake").sql("SELECT count(*) FROM ohlc").fetchall() == [(100,)]


def test_time_travel_the_version_before_a_batch_equals_the_lake_before_it(tmp_path: Path) -> None:
    sink, lake_dir = _sink(tmp_path), tmp_path / "lake"
    before: list[tuple[int, dict[str, list[tuple[Any, ...]]]]] = []
    for n, batch in enumerate(_batches(6)):
        table = delta.open_table(lake_dir, "ohlc")
        if table is not None:
            before.append((table.version(), _snapshot(lake_dir)))
        sink.write(batch, n)
    assert len(before) == 5
    for version, snapshot in before:
        con = lake.connect(lake_dir, as_of=version)
        assert {t: sorted(con.sql(f"SELECT * FROM {t}").fetchall(), key=repr) for t in snapshot} == snapshot
    assert _snapshot(lake_dir) != before[-1][1]


def test_a_new_checkpoint_on_a_lake_with_batches_is_a_new_app_and_appends_after_them(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    delta.append_rows(
        lake_dir, "ohlc", pa.Table.from_pylist([_bar("BTCUSDT", 100, "1")], schema=to_arrow(OHLC)), OHLC_TABLE
    )
    sink = _sink(tmp_path)
    sink.write(_batches(1)[0], 0)
    other = LakeSink(lake_dir, tmp_path / "checkpoint-2", BARS_TABLES, WINDOWS, DELAY_MS)
    assert other.app_id != sink.app_id and _sink(tmp_path).app_id == sink.app_id  # kept in the checkpoint
    assert lake.connect(lake_dir).sql("SELECT count(*) FROM ohlc").fetchall() == [(5,)]


def test_side_tables_and_empty_batches(tmp_path: Path) -> None:
    reject = {
        "reason": "malformed_json", "raw": "{", "kafka_key": None, "kafka_topic": "t", "kafka_partition": 0,
        "kafka_offset": 7, "kafka_timestamp": T0, "date": T0.date(),
    }  # fmt: skip
    batch = _batch([], [reject]).append_column(
        "feed_events", pa.nulls(1, pa.struct(list(to_arrow(SIDE_TABLES["feed_events"]))))
    )
    sink = LakeSink(tmp_path / "lake", tmp_path / "checkpoint", SIDE_TABLES)
    assert sink.write(batch, 0) == {"rejects": 1}  # a table without rows in the batch gets no commit
    assert sink.write(batch.slice(0, 0), 1) == {}
    assert not delta.is_table(tmp_path / "lake", "feed_events")
    rows = lake.connect(tmp_path / "lake").sql("SELECT reason, kafka_offset FROM rejects").fetchall()
    assert rows == [("malformed_json", 7)]
    with pytest.raises(ValueError, match="no column 'volatility'"):
        lake_sink.split_tables(batch, ["volatility"])


def test_late_trades_reach_the_progress_also_after_a_restart(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.write(_batch([_bar("BTCUSDT", 0, "100")]), 0)
    again = {**_bar("BTCUSDT", 0, "101"), "trade_count": 3}  # Spark's update: 1 trade released + 2 late ones
    assert sink.write(_batch([again, _bar("BTCUSDT", 9, "102")]), 1) == {"ohlc": 1, "volatility": 1}
    assert sink.late_trades(1) == 2
    restarted = _sink(tmp_path)  # the batch was written, but its progress not recorded: Spark runs it again
    assert restarted.write(_batch([again, _bar("BTCUSDT", 9, "102")]), 1) == {}
    assert restarted.late_trades(1) == 2
    closes = lake.connect(tmp_path / "lake").sql("SELECT close FROM ohlc ORDER BY window_start").fetchall()
    assert closes == [(Decimal("100"),), (Decimal("102"),)]
