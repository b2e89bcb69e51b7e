"""lake/trades' files as Spark's tasks write them (`jobs.tick_writer`), without Spark: each trade
once, the first copy on the topic; late marks; Delta statistics as delta-rs's own; the commit."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from core.schema import TRADES, to_arrow
from jobs.tick_writer import (
    FILE_COLUMNS,
    INCOMING,
    TRADE_FILE,
    TRADE_FILES,
    TRADES_TABLE,
    TickPlan,
    first_of_each,
    stats_json,
    stored_files,
    write_files,
    write_ticks,
)
from lake import delta

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def _trade(trade_id: int, ms: int, *, offset: int, symbol: str = "BTCUSDT", price: str = "100.5") -> dict[str, Any]:
    at = T0 + dt.timedelta(milliseconds=ms)
    return {
        "exchange": "binance", "symbol": symbol, "trade_id": trade_id, "price": Decimal(price),
        "quantity": Decimal("0.00100000"), "event_time": at, "is_buyer_maker": trade_id % 2 == 0,
        "ingest_time": at + dt.timedelta(milliseconds=30), "kafka_partition": 0, "kafka_offset": offset,
        "date": at.date(),
    }  # fmt: skip


def _incoming(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=to_arrow(INCOMING))


def _lake_table(tmp_path: Path) -> DeltaTable:
    return delta.ensure_table(tmp_path / "lake", TRADES_TABLE, TRADES)


def _plan(table: DeltaTable, batch_id: int, *, watermark_ms: int = 0, released_us: int | None = None) -> TickPlan:
    return TickPlan(
        str(Path(table.table_uri.removeprefix("file://"))), batch_id, write=True, spark_watermark_ms=watermark_ms,
        released_us=released_us, stored=stored_files(table), stored_from="", version=table.version(),
    )  # fmt: skip


def _commit(table: DeltaTable, files: list[dict[str, Any]], batch_id: int) -> bool:
    return delta.commit_files(table, files, txn=("test-app", batch_id))


def _stored(table: DeltaTable) -> list[tuple[Any, ...]]:
    table.update_incremental()
    rows = table.to_pyarrow_table().to_pylist()
    return sorted((r["exchange"], r["symbol"], r["trade_id"], r["kafka_offset"], r["late"]) for r in rows)


def test_the_first_copy_on_the_topic_is_kept() -> None:
    rows = [_trade(7, 10, offset=5), _trade(7, 10, offset=2), _trade(8, 20, offset=3), _trade(7, 10, offset=9)]
    kept = first_of_each(_incoming(rows)).to_pylist()
    assert sorted((r["trade_id"], r["kafka_offset"]) for r in kept) == [(7, 2), (8, 3)]


def test_the_statistics_are_delta_rs_own(tmp_path: Path) -> None:
    rows = [_trade(i, i * 250, offset=i, price=p) for i, p in enumerate(["100.5", "99.12345678", "1000000.1"], 1)]
    rows[1]["ingest_time"] = None
    body = pa.Table.from_pylist([{**r, "late": i == 0} for i, r in enumerate(rows)], schema=to_arrow(TRADES)).select(
        [c.name for c in FILE_COLUMNS]
    )
    write_deltalake(str(tmp_path / "t"), body)
    (theirs,) = (
        json.loads(json.loads(line)["add"]["stats"])
        for line in (tmp_path / "t" / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
        if '"add"' in line
    )
    assert json.loads(stats_json(body)) == theirs


def test_repeats_are_stored_once_across_batches_and_late_ones_are_marked(tmp_path: Path) -> None:
    table = _lake_table(tmp_path)
    first = [_trade(1, 100, offset=0), _trade(2, 400, offset=1), _trade(2, 400, offset=2), _trade(3, 900, offset=3)]
    files = write_files(_plan(table, 0), _incoming(first))
    assert _commit(table, files, 0)
    assert _stored(table) == [("binance", "BTCUSDT", i, o, False) for i, o in ((1, 0), (2, 1), (3, 3))]

    # batch 1: a repeat of a stored trade, a new one, and one whose window was released (ends
    # at 1 s, the closer's floor is 1.5 s) and one Spark's watermark had passed (0.6 s)
    second = [
        _trade(3, 900, offset=4), _trade(4, 3000, offset=5), _trade(5, 700, offset=6), _trade(6, 600, offset=7),
    ]  # fmt: skip
    floor_us = int((T0 + dt.timedelta(milliseconds=1500)).timestamp() * 1_000_000)
    watermark_ms = int(T0.timestamp() * 1000) + 600
    files = write_files(_plan(table, 1, watermark_ms=watermark_ms, released_us=floor_us), _incoming(second))
    assert sum(f["late"] for f in files) == 2
    # both late trades fall in the second [T0, T0 + 1 s): the one window they revise
    t0_us = int(T0.timestamp() * 1_000_000)
    assert [w for f in files for w in json.loads(f["late_windows"])] == [["binance", t0_us]]
    assert _commit(table, files, 1)
    assert _stored(table)[3:] == [
        ("binance", "BTCUSDT", 4, 5, False), ("binance", "BTCUSDT", 5, 6, True), ("binance", "BTCUSDT", 6, 7, True),
    ]  # fmt: skip
    # a re-run of batch 1 commits nothing more
    assert not _commit(table, files, 1)
    assert len(_stored(table)) == 6
    # foreign readers see the same rows, decimals exact
    frame = pl.read_delta(str(delta.table_path(tmp_path / "lake", TRADES_TABLE)))
    assert frame.height == 6 and frame["price"].dtype == pl.Decimal(18, 8)
    assert sorted(frame["trade_id"].to_list()) == [1, 2, 3, 4, 5, 6]


def test_a_late_repeat_on_an_older_day_is_found_in_its_partition(tmp_path: Path) -> None:
    table = _lake_table(tmp_path)
    assert _commit(table, write_files(_plan(table, 0), _incoming([_trade(1, 0, offset=0)])), 0)
    two_days_on = 2 * 86_400_000
    assert _commit(table, write_files(_plan(table, 1), _incoming([_trade(2, two_days_on, offset=1)])), 1)
    table.update_incremental()
    # the driver hands over only the recent day's files; the task finds the old day's itself
    plan = TickPlan(
        str(Path(table.table_uri.removeprefix("file://"))), 2, write=True, spark_watermark_ms=0, released_us=None,
        stored=stored_files(table, lambda d: d >= (T0.date() + dt.timedelta(days=1)).isoformat()),
        stored_from=(T0.date() + dt.timedelta(days=1)).isoformat(), version=table.version(),
    )  # fmt: skip
    assert plan.stored.num_rows == 1
    assert write_files(plan, _incoming([_trade(1, 0, offset=2)])) == []


def _mapped(plan: TickPlan, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    batches = pa.Table.from_pylist(rows, schema=schema).to_batches()
    return pa.Table.from_batches(list(write_ticks(plan, "trades", iter(batches))))


def test_the_task_passes_other_rows_on_and_returns_one_row_per_file(tmp_path: Path) -> None:
    table = _lake_table(tmp_path)
    schema = pa.schema([("other", pa.struct([("n", pa.int64())])), ("trades", pa.struct(list(to_arrow(INCOMING))))])
    trades = [_trade(1, 0, offset=0), _trade(2, 10, offset=1, symbol="ETHUSDT")]
    rows = [{"other": {"n": 1}}, *({"trades": t} for t in trades)]
    out = _mapped(_plan(table, 0), rows, schema)
    assert out.column_names == ["other", TRADE_FILES]
    assert out.column("other").to_pylist()[0] == {"n": 1}
    files = out.column(TRADE_FILES).drop_null().to_pylist()
    assert sorted(f["symbol"] for f in files) == ["BTCUSDT", "ETHUSDT"]
    assert out.schema.field(TRADE_FILES).type == TRADE_FILE
    # a plan for a batch the table holds writes nothing
    again = _mapped(TickPlan("unused", 0, write=False, spark_watermark_ms=0, released_us=None), rows, schema)
    assert again.column(TRADE_FILES).null_count == again.num_rows == 1


@pytest.mark.parametrize("symbol", ["BTC-USD", "A/B"])
def test_a_symbol_is_a_valid_partition_folder(tmp_path: Path, symbol: str) -> None:
    table = _lake_table(tmp_path)
    assert _commit(table, write_files(_plan(table, 0), _incoming([_trade(1, 0, offset=0, symbol=symbol)])), 0)
    table.update_incremental()
    assert table.to_pyarrow_table().column("symbol").to_pylist() == [symbol]
