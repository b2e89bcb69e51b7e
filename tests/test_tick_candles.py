"""`candles()` below 1 s: built from lake/trades, exactly, by the rules of the job's 1 s bars.

The lake holds trades around a UTC midnight (`tests.support.trades_lake`), many sharing an
event_time, and their 1 s bars as the pandas reference computes them. Sub-second candles are
held against that reference, the trades branch at 1 s and more against the bars' candles, and
the plans against scanning the table the step does not need.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

import lake
from lake.macros import candles_macro
from tests.support.plans import parquet_scans as plan_scans
from tests.support.reference import reference_candles_ms
from tests.support.trades_lake import MIDNIGHT, SYMBOL, trades_lake

START, END = MIDNIGHT - dt.timedelta(seconds=2), MIDNIGHT + dt.timedelta(milliseconds=2100)
QUERY = "SELECT * FROM candles(?, to_seconds(?), ?, ?, venue := ?)"  # as the API and the dashboard call it


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("ticks") / "lake"
    return folder, trades_lake(folder)


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def expected_candles(
    records: list[dict[str, Any]], step_ms: int, start: dt.datetime, end: dt.datetime, venue: str | None = None
) -> list[dict[str, Any]]:
    """The reference's candles of SYMBOL in [start, end), in the macro's order, with bucket_end
    and `bars` (the distinct seconds of each candle's trades)."""
    chosen = [
        r
        for r in records
        if r["symbol"] == SYMBOL and _ms(start) <= r["timestamp"] < _ms(end) and venue in (None, r["exchange"])
    ]
    seconds: dict[tuple[str, int], set[int]] = {}
    for r in chosen:
        seconds.setdefault((r["exchange"], r["timestamp"] // step_ms), set()).add(r["timestamp"] // 1000)
    out = []
    for candle in reference_candles_ms(chosen, step_ms).to_dict("records"):
        begin = candle["bucket_start"].to_pydatetime()
        bucket = _ms(begin) // step_ms
        out.append({
            **candle, "bucket_start": begin, "bucket_end": begin + dt.timedelta(milliseconds=step_ms),
            "bars": len(seconds[candle["exchange"], bucket]),
        })  # fmt: skip
    return sorted(out, key=lambda c: (c["exchange"], c["bucket_start"]))


def macro_candles(con: duckdb.DuckDBPyConnection, step_s: float, venue: str | None = None) -> list[dict[str, Any]]:
    result = con.execute(QUERY, [SYMBOL, step_s, START, END, venue])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def assert_same_candles(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Equal row for row: decimals, ids, counts and times exactly; vwap (a double, quote / volume)
    to 1e-12, as the two sides convert the same exact sums to doubles by different routines."""
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert g.keys() - {"vwap"} <= w.keys()
        assert {k: g[k] for k in g if k != "vwap"} == {k: w[k] for k in g if k != "vwap"}
        assert math.isclose(g["vwap"], w["vwap"], rel_tol=1e-12)


@pytest.mark.parametrize("step_ms", [100, 250, 300])
def test_sub_second_candles_are_the_reference_over_the_trades(
    ticks: tuple[Path, list[dict[str, Any]]], step_ms: int
) -> None:
    folder, records = ticks
    want = expected_candles(records, step_ms, START, END)
    assert_same_candles(macro_candles(lake.connect(folder), step_ms / 1000), want)
    # The data holds what the rules are about: candles on both dates, first or last trades that
    # tie on event_time with a higher trade id first in time order by id... and, at 300 ms,
    # candles that straddle a second (`bars` = 2).
    assert {c["bucket_start"].date() for c in want} == {START.date(), END.date()}
    assert any(c["trade_count"] > 1 and c["first_trade_id"] > c["last_trade_id"] for c in want)
    assert any(c["bars"] == 2 for c in want) == (step_ms == 300)


def test_ties_on_event_time_resolve_by_trade_id(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    folder, records = ticks
    got = {(c["exchange"], c["bucket_start"]): c for c in macro_candles(lake.connect(folder), 0.1)}
    checked = 0
    for (exchange, begin), candle in got.items():
        mine = [
            r for r in records
            if r["symbol"] == SYMBOL and r["exchange"] == exchange and _ms(begin) <= r["timestamp"] < _ms(begin) + 100
        ]  # fmt: skip
        first_time = min(r["timestamp"] for r in mine)
        tied = [r for r in mine if r["timestamp"] == first_time]
        if len(tied) > 1:
            first = min(tied, key=lambda r: r["trade_id"])
            assert (candle["first_trade_id"], str(candle["open"])) == (first["trade_id"], first["price"])
            checked += 1
    assert checked >= 3


def test_the_venue_filter_below_one_second(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    folder, records = ticks
    got = macro_candles(lake.connect(folder), 0.25, venue="coinbase")
    assert {c["exchange"] for c in got} == {"coinbase"}
    assert_same_candles(got, expected_candles(records, 250, START, END, venue="coinbase"))


@pytest.mark.parametrize("step_s", [1, 5, 60])
def test_the_trades_branch_at_one_second_and_more_is_the_bars_candles(
    ticks: tuple[Path, list[dict[str, Any]]], step_s: int
) -> None:
    """The job's 1 s bars (here: the reference's) and the trades they come from give the same
    candles: the macro built to take trades up to a day is held against the shipped one."""
    folder, _ = ticks
    from_trades = lake.connect(folder, read_only=False)
    from_trades.execute(candles_macro("INTERVAL 1 DAY"))
    assert scanned(from_trades, step_s) == ["trades"]
    # Whole seconds: a bar is in range by its window_start, a trade by its event_time.
    start, end = START - dt.timedelta(seconds=1), MIDNIGHT + dt.timedelta(seconds=3)
    got = from_trades.execute(QUERY, [SYMBOL, step_s, start, end, None]).fetchall()
    want = lake.connect(folder).execute(QUERY, [SYMBOL, step_s, start, end, None]).fetchall()
    assert got == want and len(want) >= 4


def _describe(con: duckdb.DuckDBPyConnection, step_s: float) -> list[tuple[str, str]]:
    result = con.sql(QUERY, params=[SYMBOL, step_s, START, END, None])
    return [(d[0], str(t)) for d, t in zip(result.description, result.types, strict=True)]


def test_both_branches_give_the_same_columns_and_types(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    con = lake.connect(ticks[0])
    assert _describe(con, 0.1) == _describe(con, 60)
    assert dict(_describe(con, 0.1)) | {"bucket_start": "", "bucket_end": ""} == {
        "exchange": "VARCHAR", "symbol": "VARCHAR", "bucket_start": "", "bucket_end": "",
        "open": "DECIMAL(18,8)", "high": "DECIMAL(18,8)", "low": "DECIMAL(18,8)", "close": "DECIMAL(18,8)",
        "volume": "DECIMAL(38,8)", "quote_volume": "DECIMAL(38,16)", "vwap": "DOUBLE", "trade_count": "BIGINT",
        "buy_volume": "DECIMAL(38,8)", "sell_volume": "DECIMAL(38,8)", "first_trade_id": "BIGINT",
        "last_trade_id": "BIGINT", "bars": "BIGINT",
    }  # fmt: skip


def parquet_scans(
    con: duckdb.DuckDBPyConnection, step_s: float, start: dt.datetime = START, end: dt.datetime = END
) -> list[dict[str, Any]]:
    return plan_scans(con, QUERY, [SYMBOL, step_s, start, end, None])


def scanned(con: duckdb.DuckDBPyConnection, step_s: float) -> list[str]:
    """The tables the plan reads, told apart by their time column."""
    return ["trades" if "event_time" in s["Projections"] else "ohlc" for s in parquet_scans(con, step_s)]


@pytest.mark.parametrize(("step_s", "table"), [(0.1, "trades"), (0.999, "trades"), (1, "ohlc"), (3600, "ohlc")])
def test_the_plan_scans_only_the_table_the_step_needs(
    ticks: tuple[Path, list[dict[str, Any]]], step_s: float, table: str
) -> None:
    assert scanned(lake.connect(ticks[0]), step_s) == [table]


def test_the_trades_scan_is_pruned_by_date(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    (scan,) = parquet_scans(lake.connect(ticks[0]), 0.1, MIDNIGHT, MIDNIGHT + dt.timedelta(seconds=2))
    assert "(date = '2026-03-02'::DATE)" in scan["File Filters"]
    assert scan["Scanning Files"] == "3/12"  # 3 commits x (2 symbols x 2 dates): AAAUSDT's of 2026-03-02


def test_calls_at_one_second_and_more_do_not_read_trades(tmp_path: Path) -> None:
    """Not even to bind the view: with lake/trades' files gone, 1 s and more still work."""
    trades_lake(tmp_path / "lake")
    con = lake.connect(tmp_path / "lake")
    shutil.rmtree(tmp_path / "lake" / "trades")
    assert len(macro_candles(con, 1)) == 10  # 23:59:58 to 00:00:02 of both exchanges
    assert len(macro_candles(con, 60)) == 4  # 23:59 and 00:00 of both
    with pytest.raises(duckdb.IOException):
        macro_candles(con, 0.5)
