"""An independent pandas reference for the bars: no code shared with the job.

It applies the documented semantics directly: valid trades only, the first
record of each (exchange, symbol, trade_id) counts, open/close by
(timestamp, trade_id), exact decimal sums.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ingest.demo import DEMO_EXCHANGE, loop_plan

SCALE = Decimal("1e-8")
MAX_ABS = Decimal("1e10")


def _valid_decimal(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value)
    except decimal.InvalidOperation:
        return None
    if not d.is_finite() or d <= 0 or d >= MAX_ABS or d != d.quantize(SCALE):
        return None
    return d


def valid_trades(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in records:
        if not isinstance(r, dict) or r.get("type") != "trade" or r.get("v") != 1:
            continue
        price, qty = _valid_decimal(r.get("price")), _valid_decimal(r.get("quantity"))
        ts = r.get("timestamp")
        if (
            price is None
            or qty is None
            or not r.get("exchange")
            or not r.get("symbol")
            or not isinstance(ts, int)
            or not 1_262_304_000_000 <= ts <= 4_102_444_800_000
            or not isinstance(r.get("trade_id"), int)
            or not isinstance(r.get("is_buyer_maker"), bool)
        ):
            continue
        rows.append({**r, "price": price, "quantity": qty})
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(["exchange", "symbol", "trade_id"], keep="first")


def _candles(records: Iterable[dict[str, Any]], step_ms: int, time_column: str) -> pd.DataFrame:
    """OHLCV per (exchange, symbol, step) straight from the valid, deduplicated trades."""
    trades = valid_trades(records)
    trades = trades.assign(bucket=trades["timestamp"] // step_ms).sort_values(
        ["exchange", "symbol", "bucket", "timestamp", "trade_id"]
    )
    out = []
    with decimal.localcontext() as ctx:
        ctx.prec = 80  # exact products and sums of DECIMAL(18,8) values
        for (exchange, symbol, bucket), g in trades.groupby(["exchange", "symbol", "bucket"], sort=True):
            prices, qtys = list(g["price"]), list(g["quantity"])
            volume = sum(qtys, Decimal(0))
            quote = sum((p * q for p, q in zip(prices, qtys, strict=True)), Decimal(0))
            buy = sum((q for q, m in zip(qtys, g["is_buyer_maker"], strict=True) if not m), Decimal(0))
            out.append(
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    time_column: pd.Timestamp(bucket * step_ms, unit="ms", tz="UTC"),
                    "open": prices[0],
                    "high": max(prices),
                    "low": min(prices),
                    "close": prices[-1],
                    "volume": volume,
                    "quote_volume": quote,
                    "vwap": float(quote) / float(volume),
                    "trade_count": len(g),
                    "buy_volume": buy,
                    "sell_volume": volume - buy,
                    "first_trade_id": int(g["trade_id"].iloc[0]),
                    "last_trade_id": int(g["trade_id"].iloc[-1]),
                }
            )
    return pd.DataFrame(out)


def reference_bars(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return _candles(records, 1000, "window_start")


def reference_candles(records: Iterable[dict[str, Any]], step_s: int) -> pd.DataFrame:
    """Candles of `step_s` seconds straight from the trades (not from 1-second bars)."""
    return _candles(records, step_s * 1000, "bucket_start")


def reference_candles_ms(records: Iterable[dict[str, Any]], step_ms: int) -> pd.DataFrame:
    """Candles of `step_ms` milliseconds, below a second too, straight from the trades."""
    return _candles(records, step_ms, "bucket_start")


def reference_volatility(bars: pd.DataFrame, windows_s: Iterable[int]) -> pd.DataFrame:
    """Log returns and trailing volatility from bars, with pandas' own time-based rolling windows.

    A window of W seconds at bar t covers the key's bars in (t - W, t] (pandas' default
    `closed="right"`); NaN returns (each key's first bar) are skipped by the rolling functions.
    """
    out = []
    for (_exchange, _symbol), g in bars.groupby(["exchange", "symbol"], sort=True):
        g = g.sort_values("window_start").set_index("window_start", drop=False)
        close = g["close"].astype(float)
        r = np.log(close / close.shift(1))
        frame = pd.DataFrame(
            {"exchange": g["exchange"], "symbol": g["symbol"], "window_start": g["window_start"], "log_return": r}
        )
        for w in windows_s:
            rolling = r.rolling(f"{w}s")
            frame[f"volatility_{w}s"] = rolling.std(ddof=1)
            frame[f"realized_vol_{w}s"] = np.sqrt((r * r).rolling(f"{w}s", min_periods=1).sum())
            frame[f"returns_{w}s"] = rolling.count().astype(int)
            frame.loc[frame[f"returns_{w}s"] < 2, f"volatility_{w}s"] = np.nan
        out.append(frame.reset_index(drop=True))
    return pd.concat(out, ignore_index=True)


def expected_loops(tape: list[dict], loops: int, now_ms: int) -> pd.DataFrame:
    """The tape's own reference bars, shifted as each loop shifts times and ids."""
    bars = reference_bars(tape)
    out = []
    for n in range(loops):
        plan = loop_plan(tape, now_ms, n)
        shifted = bars.assign(
            exchange=DEMO_EXCHANGE,
            window_start=bars["window_start"] + pd.Timedelta(milliseconds=plan.time_shift_ms),
            first_trade_id=bars["first_trade_id"] + bars["symbol"].map(plan.id_shift),
            last_trade_id=bars["last_trade_id"] + bars["symbol"].map(plan.id_shift),
        )
        out.append(shifted)
    return pd.concat(out, ignore_index=True).sort_values(["symbol", "window_start"]).reset_index(drop=True)
