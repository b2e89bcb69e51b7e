"""Candles in exact decimals: the lake's final ones, and provisional ones from the live 1 s bars.

Pure: rows in, rows out. A candle is a dict with the fields of `api.schemas.Candle`: times are
UTC datetimes, amounts decimal text (final candles) or Decimal (provisional ones). Live bars are
`core.live_bars.decode` dicts (epoch-ms window times).
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api.encoding import from_ms
from core.schema import PRICE_SCALE, QTY_SCALE

_QUOTE_SCALE, _VOLUME_SCALE = PRICE_SCALE + QTY_SCALE, QTY_SCALE  # the lake's quote_volume and volume
_SHIFT = _VOLUME_SCALE + PRICE_SCALE - _QUOTE_SCALE  # unscaled vwap = quote * 10**_SHIFT / volume
_EXACT = decimal.Context(prec=100)  # wider than any lake decimal (38 digits): scaling never rounds


def vwap_unscaled(quote: int, volume: int) -> int | None:
    """quote_volume / volume in units of the price scale, rounded half-even, from unscaled integers."""
    if volume == 0:
        return None
    num, den = quote * 10 ** max(_SHIFT, 0), volume * 10 ** max(-_SHIFT, 0)
    if den < 0:
        num, den = -num, -den
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


def _text(unscaled: int | None, scale: int) -> str | None:
    if unscaled is None:
        return None
    sign, digits = ("-" if unscaled < 0 else ""), abs(unscaled)
    return f"{sign}{digits // 10**scale}.{digits % 10**scale:0{scale}d}"


def vwap(quote_volume: Decimal, volume: Decimal) -> Decimal | None:
    """quote_volume / volume at the price scale (half-even); None without volume."""
    q = int(quote_volume.scaleb(_QUOTE_SCALE, context=_EXACT))
    n = vwap_unscaled(q, int(volume.scaleb(_VOLUME_SCALE, context=_EXACT)))
    return None if n is None else Decimal(n).scaleb(-PRICE_SCALE, context=_EXACT)


def decimal_texts(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """A decimal128 column as text with every digit at its scale ('0.00000001', never '1E-8',
    which Arrow's own cast to string gives for small values)."""
    scale = column.type.scale
    return [None if u is None else _text(u, scale) for u in unscaled(column)]


def unscaled(column: pa.ChunkedArray | pa.Array) -> list[int | None]:
    """A decimal128 column's values as unscaled integers (its 16-byte little-endian words)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[int | None] = []
    for chunk in chunks:
        words = np.frombuffer(chunk.buffers()[1], dtype=np.uint64)[2 * chunk.offset : 2 * (chunk.offset + len(chunk))]
        lo, hi = words[0::2].tolist(), words[1::2].view(np.int64).tolist()
        valid = chunk.is_valid().to_pylist() if chunk.null_count else None
        out += [
            (h << 64) | lo_ if valid is None or valid[i] else None
            for i, (h, lo_) in enumerate(zip(hi, lo, strict=True))
        ]
    return out


AMOUNTS = ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume")
SUMS = ("volume", "quote_volume", "trade_count", "buy_volume", "sell_volume", "bars")  # added up when candles merge
_COLUMNS = ("time", *AMOUNTS, "trade_count", "first_trade_id", "last_trade_id", "bars")


def _columns(table: pa.Table) -> dict[str, list[Any]]:
    """The candle columns of `api.queries`-shaped rows (Arrow) as Python lists, then vwap: decimals
    as exact text, printed from their unscaled integers (every digit at the column's scale, as
    `format(Decimal, "f")` does); vwap by exact integer division (None without volume)."""
    columns = {
        name: decimal_texts(table.column(name)) if name in AMOUNTS else table.column(name).to_pylist()
        for name in _COLUMNS
    }
    quotes, volumes = unscaled(table.column("quote_volume")), unscaled(table.column("volume"))
    columns["vwap"] = [
        None if q is None or v is None else _text(vwap_unscaled(q, v), PRICE_SCALE)
        for q, v in zip(quotes, volumes, strict=True)
    ]
    return columns


def final_candles(table: pa.Table) -> list[dict[str, Any]]:
    """`api.queries` candle rows (Arrow, decimal columns) -> candles, amounts as exact decimal text."""
    columns = _columns(table)
    columns["provisional"] = [False] * table.num_rows
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


_OBJECT = (  # in the order of _COLUMNS, then vwap
    '{"time":"%s","open":"%s","high":"%s","low":"%s","close":"%s","volume":"%s","quote_volume":"%s",'
    '"buy_volume":"%s","sell_volume":"%s","trade_count":%d,"first_trade_id":%d,"last_trade_id":%d,"bars":%d,'
    '"vwap":%s,"provisional":false}'
)


def candle_json_objects(table: pa.Table) -> list[bytes]:
    """Each final candle of `table` as its JSON object: the same JSON as `final_candles` through
    `api.encoding.dumps` (tests/test_api_candles.py), a few times faster for a day of minutes."""
    columns = _columns(table)
    seconds = pc.cast(table.column("time"), pa.timestamp("s", tz="UTC"))
    columns["time"] = pc.strftime(seconds, "%Y-%m-%dT%H:%M:%SZ").to_pylist()
    columns["vwap"] = ["null" if v is None else f'"{v}"' for v in columns["vwap"]]
    return [(_OBJECT % values).encode() for values in zip(*columns.values(), strict=True)]


def roll_up(minutes: pa.Table, step_s: int) -> pa.Table:
    """1-minute candles of one market, in time order -> candles of `step_s` (a multiple of 60 that
    divides a day), with `lake.macros.candle_aggregates`' rules: first open, last close, sums."""
    if step_s == 60:
        return minutes.rename_columns(["time" if n == "bucket_start" else n for n in minutes.column_names])
    bucket = pc.floor_temporal(minutes.column("bucket_start"), multiple=step_s, unit="second")
    rows = pa.array(range(minutes.num_rows), pa.int64())
    grouped = minutes.append_column("time", bucket).append_column("row", rows).group_by("time", use_threads=False)
    agg = grouped.aggregate(
        [("row", "min"), ("row", "max"), ("high", "max"), ("low", "min"), *((n, "sum") for n in SUMS)]
    )
    agg = agg.sort_by("time")
    first, last = agg.column("row_min"), agg.column("row_max")  # rows are in time order: first and last of each
    return pa.table({
        "time": agg.column("time"),
        "open": minutes.column("open").take(first), "high": agg.column("high_max"), "low": agg.column("low_min"),
        "close": minutes.column("close").take(last),
        **{n: agg.column(f"{n}_sum") for n in SUMS},
        "first_trade_id": minutes.column("first_trade_id").take(first),
        "last_trade_id": minutes.column("last_trade_id").take(last),
    })  # fmt: skip


def as_decimals(candle: dict[str, Any]) -> dict[str, Any]:
    """A candle with its decimal text as Decimal (for arithmetic, and for the file formats)."""
    out = dict(candle)
    for name in (*AMOUNTS, "vwap"):
        if isinstance(out.get(name), str):
            out[name] = Decimal(out[name])
    return out


def _merge(into: dict[str, Any], bar: dict[str, Any]) -> None:
    """Add a later 1 s bar (or candle part) to a candle, in time order."""
    into["high"] = max(into["high"], bar["high"])
    into["low"] = min(into["low"], bar["low"])
    into["close"] = bar["close"]
    for name in SUMS:
        into[name] += bar[name]
    into["last_trade_id"] = bar["last_trade_id"]
    into["vwap"] = vwap(into["quote_volume"], into["volume"])
    into["provisional"] = True


_BAR_FIELDS = (*AMOUNTS, "trade_count", "first_trade_id", "last_trade_id")  # what a 1 s bar brings to a candle


def live_candles(live: list[dict[str, Any]], step_s: int) -> list[dict[str, Any]]:
    """1 s live bars (any order) -> provisional candles of `step_s`, buckets aligned to the epoch."""
    step_ms = step_s * 1000
    out: dict[int, dict[str, Any]] = {}
    for bar in sorted(live, key=lambda b: b["window_start"]):
        bucket = bar["window_start"] - bar["window_start"] % step_ms
        part = {**{k: bar[k] for k in _BAR_FIELDS}, "bars": 1}
        if bucket in out:
            _merge(out[bucket], part)
        else:
            out[bucket] = {
                "time": from_ms(bucket),
                **part,
                "vwap": vwap(part["quote_volume"], part["volume"]),
                "provisional": True,
            }
    return [out[b] for b in sorted(out)]


def with_provisional(
    final: list[dict[str, Any]],
    live: list[dict[str, Any]],
    newest_final_start: dt.datetime | None,
    step_s: int,
    start: dt.datetime,
    end: dt.datetime,
) -> list[dict[str, Any]]:
    """Final candles then provisional ones from the live bars the lake does not hold yet.

    Live bars count after the market's newest final bar in the lake (`newest_final_start`)
    and within [start, end). A bucket the lake holds in part (the current minute) becomes
    one provisional candle of both parts.
    """
    after = -1 if newest_final_start is None else int(newest_final_start.timestamp() * 1000)
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    fresh = [b for b in live if b["window_start"] > after and lo <= b["window_start"] < hi]
    provisional = live_candles(fresh, step_s)
    if final and provisional and final[-1]["time"] == provisional[0]["time"]:
        merged = as_decimals(final[-1])
        _merge(merged, provisional[0])
        return [*final[:-1], merged, *provisional[1:]]
    return [*final, *provisional]
