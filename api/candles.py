"""Candles in exact decimals: the lake's final ones, and provisional ones from the live 1 s bars.

Pure: rows in, rows out. A candle is a dict with `CANDLE_FIELDS`; times are UTC datetimes,
amounts Decimal. Live bars are `lake.live_bars.decode` dicts (epoch-ms window times).
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from api.encoding import from_ms
from lake.schema import PRICE_SCALE

CANDLE_FIELDS = (
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "trade_count",
    "buy_volume",
    "sell_volume",
    "first_trade_id",
    "last_trade_id",
    "bars",
    "provisional",
)
_PRICE_STEP = Decimal(1).scaleb(-PRICE_SCALE)
_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


def vwap(quote_volume: Decimal, volume: Decimal) -> Decimal | None:
    """quote_volume / volume at the price scale (half-even); None without volume."""
    if not volume:
        return None
    return _CONTEXT.divide(quote_volume, volume).quantize(_PRICE_STEP, context=_CONTEXT)


AMOUNTS = ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume")
_COLUMNS = ("time", *AMOUNTS, "trade_count", "first_trade_id", "last_trade_id", "bars")


def final_candles(table: pa.Table) -> list[dict[str, Any]]:
    """`api.queries` candle rows (Arrow, decimal columns) -> candles, amounts as exact decimal text.

    Arrow's decimal-to-string cast prints every digit at the column's scale, as
    `format(Decimal, "f")` does; only vwap is computed in Python (Decimal), per row.
    """
    columns: dict[str, list[Any]] = {}
    for name in _COLUMNS:
        column = table.column(name)
        columns[name] = (pc.cast(column, pa.string()) if name in AMOUNTS else column).to_pylist()
    out = []
    for i in range(table.num_rows):
        row = {name: columns[name][i] for name in _COLUMNS}
        volume = row["volume"]
        row["vwap"] = vwap(Decimal(row["quote_volume"]), Decimal(volume)) if volume.strip("0.") else None
        row["provisional"] = False
        out.append(row)
    return out


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
    for name in ("volume", "quote_volume", "trade_count", "buy_volume", "sell_volume", "bars"):
        into[name] += bar[name]
    into["last_trade_id"] = bar["last_trade_id"]
    into["vwap"] = vwap(into["quote_volume"], into["volume"])
    into["provisional"] = True


def live_candles(live: list[dict[str, Any]], step_s: int) -> list[dict[str, Any]]:
    """1 s live bars (any order) -> provisional candles of `step_s`, buckets aligned to the epoch."""
    step_ms = step_s * 1000
    out: dict[int, dict[str, Any]] = {}
    for bar in sorted(live, key=lambda b: b["window_start"]):
        bucket = bar["window_start"] - bar["window_start"] % step_ms
        part = {
            **{
                k: bar[k]
                for k in (
                    "open",
                    "high",
                    "low",
                    "close",
                    "volume",
                    "quote_volume",
                    "trade_count",
                    "buy_volume",
                    "sell_volume",
                    "first_trade_id",
                    "last_trade_id",
                )
            },
            "bars": 1,
        }
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
