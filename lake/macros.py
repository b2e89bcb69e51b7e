"""DuckDB table macros over the `ohlc` and `volatility` views: candles and volatility at any step.

    SELECT * FROM candles('BTCUSDT', INTERVAL 1 MINUTE, TIMESTAMPTZ '2026-11-20', TIMESTAMPTZ '2026-11-21');
    SELECT * FROM candles('BTCUSD', INTERVAL 1 HOUR, t0, t1, venue := 'coinbase');  -- the exchange filter
    SELECT * FROM realized_volatility('BTCUSDT', INTERVAL 5 MINUTE, t0, t1);

Both cover bars with `start <= window_start < end`, in buckets `time_bucket(step, window_start)`
aligned to UTC midnight. The range also filters the `date` partition column, so only the
partitions in range are read.
"""

from __future__ import annotations

# The timeframes every reader offers (dashboard pickers, the API's `interval=`): each divides a day.
INTERVALS_S: dict[str, int] = {"1s": 1, "5s": 5, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

# Seconds in a year for annualizing: crypto trades every day of the year.
SECONDS_PER_YEAR = 365 * 24 * 3600

_RANGE = """
    WHERE bars.symbol = symbol_
      AND (venue IS NULL OR bars.exchange = venue)
      AND bars.window_start >= start_ AND bars.window_start < end_
      AND bars.date BETWEEN CAST(start_ AS DATE) AND CAST(end_ AS DATE)
"""

_BUCKET = """
    bars.exchange AS exchange,
    bars.symbol AS symbol,
    time_bucket(step_, bars.window_start) AS bucket_start,
    time_bucket(step_, bars.window_start) + step_ AS bucket_end,"""


def candle_aggregates() -> str:
    """A candle's columns from 1 s bars aliased `bars`: for the macro, and for the API's
    per-partition 1-minute candles (`api.rollups`), which `api.candles.roll_up` rolls up further
    by the same rules."""
    time, bars = "window_start", "count(*)"
    return f"""
    arg_min(bars.open, bars.{time}) AS open,
    max(bars.high) AS high,
    min(bars.low) AS low,
    arg_max(bars.close, bars.{time}) AS close,
    sum(bars.volume) AS volume,
    sum(bars.quote_volume) AS quote_volume,
    CAST(sum(bars.quote_volume) AS DOUBLE) / NULLIF(CAST(sum(bars.volume) AS DOUBLE), 0) AS vwap,
    CAST(sum(bars.trade_count) AS BIGINT) AS trade_count,
    sum(bars.buy_volume) AS buy_volume,
    sum(bars.sell_volume) AS sell_volume,
    arg_min(bars.first_trade_id, bars.{time}) AS first_trade_id,
    arg_max(bars.last_trade_id, bars.{time}) AS last_trade_id,
    CAST({bars} AS BIGINT) AS bars"""


CANDLES = f"""
CREATE OR REPLACE MACRO candles(symbol_, step_, start_, end_, venue := NULL) AS TABLE
SELECT{_BUCKET}{candle_aggregates()}
FROM ohlc AS bars
{_RANGE}
GROUP BY ALL
ORDER BY ALL
"""

REALIZED_VOLATILITY = f"""
CREATE OR REPLACE MACRO realized_volatility(symbol_, step_, start_, end_, venue := NULL) AS TABLE
SELECT{_BUCKET}
    count(bars.log_return) AS returns,
    stddev_samp(bars.log_return) AS volatility,
    sqrt(sum(bars.log_return * bars.log_return)) AS realized_vol,
    sqrt(sum(bars.log_return * bars.log_return) * {SECONDS_PER_YEAR} / epoch(step_)) AS realized_vol_annualized
FROM volatility AS bars
{_RANGE}
GROUP BY ALL
ORDER BY ALL
"""

MACROS = (CANDLES, REALIZED_VOLATILITY)
