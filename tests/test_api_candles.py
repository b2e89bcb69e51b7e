"""The API's exact arithmetic: vwap by integer division, decimal text from Arrow, unscaled words."""

from __future__ import annotations

import datetime as dt
import decimal
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from api.candles import final_candles, unscaled, vwap, vwap_unscaled
from api.lake_access import LakeAccess
from tests.support.lake_builder import SinkLake, ohlc_rows

QUOTE = st.integers(min_value=0, max_value=10**37)
VOLUME = st.integers(min_value=1, max_value=10**27)


def reference_vwap(quote: Decimal, volume: Decimal) -> Decimal:
    with decimal.localcontext(decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN)):
        return (quote / volume).quantize(Decimal("1e-8"))


@settings(max_examples=500, deadline=None)
@given(QUOTE, VOLUME)
def test_vwap_is_the_half_even_rounded_quotient(q: int, v: int) -> None:
    exact = decimal.Context(prec=100)
    quote, volume = Decimal(q).scaleb(-16, exact), Decimal(v).scaleb(-8, exact)
    assert vwap(quote, volume) == reference_vwap(quote, volume)
    assert Decimal(vwap_unscaled(q, v)).scaleb(-8, exact) == reference_vwap(quote, volume)  # type: ignore[arg-type]


def test_vwap_ties_go_to_even() -> None:
    assert vwap_unscaled(5, 2) == 2 and vwap_unscaled(7, 2) == 4 and vwap_unscaled(0, 3) == 0
    assert vwap_unscaled(1, 0) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(min_value=-(10**37), max_value=10**37)), max_size=40), st.integers(0, 5)
)
def test_unscaled_reads_every_word_with_nulls_and_offsets(values: list[int | None], cut: int) -> None:
    exact = decimal.Context(prec=100)
    array = pa.array([None if v is None else Decimal(v).scaleb(-16, exact) for v in values], pa.decimal128(38, 16))
    assert unscaled(array) == values
    assert unscaled(array.slice(min(cut, len(values)))) == values[min(cut, len(values)) :]
    chunked = pa.chunked_array([array.slice(0, len(values) // 2), array.slice(len(values) // 2)], pa.decimal128(38, 16))
    assert unscaled(chunked) == values


def test_final_candles_print_every_digit() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    price, volume = pa.decimal128(18, 8), pa.decimal128(38, 8)
    table = pa.table({
        "time": pa.array([t, t], pa.timestamp("us", tz="UTC")),
        "open": pa.array([Decimal("0.00000001"), Decimal("64000")], price),
        "high": pa.array([Decimal("1"), Decimal("64000.5")], price),
        "low": pa.array([Decimal("0"), Decimal("63999.99999999")], price),
        "close": pa.array([Decimal("1"), Decimal("64000.1")], price),
        "volume": pa.array([Decimal("0"), Decimal("3")], volume),
        "quote_volume": pa.array([Decimal("0"), Decimal("192000.3")], pa.decimal128(38, 16)),
        "trade_count": [0, 3], "buy_volume": pa.array([Decimal(0), Decimal("1.5")], volume),
        "sell_volume": pa.array([Decimal(0), Decimal("1.5")], volume), "first_trade_id": [1, 2],
        "last_trade_id": [1, 4], "bars": [1, 1],
    })  # fmt: skip
    rows = final_candles(table)
    assert rows[0]["open"] == "0.00000001" and rows[0]["low"] == "0.00000000" and rows[0]["vwap"] is None
    assert rows[1]["quote_volume"] == "192000.3000000000000000" and rows[1]["vwap"] == "64000.10000000"
    assert all(rows[1][k] == format(table.column(k)[1].as_py(), "f") for k in ("open", "high", "low", "close"))


def test_snapshots_are_renewed_only_when_the_lake_changes(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    sink = SinkLake(lake)
    sink.write_batch(ohlc_rows("XYZUSDT", dt.datetime(2026, 3, 2, tzinfo=dt.UTC), 60))
    access = LakeAccess(lake)
    access.refresh()
    first = access.snapshot()
    access.refresh()
    assert access.snapshot() is first, "unchanged lake: the same snapshot"
    time.sleep(0.01)
    sink.write_batch(ohlc_rows("XYZUSDT", dt.datetime(2026, 3, 2, 0, 1, tzinfo=dt.UTC), 60))
    access.refresh()
    second = access.snapshot()
    assert second is not first and second.newest[("binance", "XYZUSDT")].end > first.newest[("binance", "XYZUSDT")].end
    assert len(second.partitions[("XYZUSDT", "2026-03-02")]) == 2


def test_the_fast_json_is_the_same_json(tmp_path: Path) -> None:
    import json

    import lake as lake_reader
    from api.candles import candle_json_objects
    from api.encoding import dumps
    from api.rollups import MinuteRollups

    lake = tmp_path / "lake"
    rows = ohlc_rows("XYZUSDT", dt.datetime(2026, 3, 2, 23, 58, 30, tzinfo=dt.UTC), 200)
    rows += [{**r, "exchange": "coinbase", "volume": Decimal(0), "quote_volume": Decimal(0)} for r in rows[:70]]
    SinkLake(lake).write_batch(rows)
    con = lake_reader.connect(lake)
    files = tuple(sorted(str(p) for p in (lake / "ohlc").rglob("*.parquet")))
    table = (
        MinuteRollups()
        .get(con, files)
        .table.rename_columns(
            [
                "time" if n == "bucket_start" else n
                for n in ["exchange", "bucket_start", *MinuteRollups().get(con, files).table.column_names[2:]]
            ]
        )
    )
    fast = [json.loads(b) for b in candle_json_objects(table)]
    slow = [json.loads(dumps(r)) for r in final_candles(table)]
    assert fast == slow and len(fast) == 2 * 2 + 2  # two exchanges; binance spans 4 minutes, coinbase 2
    assert any(c["vwap"] is None for c in fast)
