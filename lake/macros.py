"""DuckDB table macros over the lake's views: candles and volatility at any step.

    SELECT * FROM candles('BTCUSDT', INTERVAL 1 MINUTE, TIMESTAMPTZ '2026-11-20', TIMESTAMPTZ '2026-11-21');
    SELECT * FROM candles('BTCUSD', INTERVAL 1 HOUR, t0, t1, venue := 'coinbase');  -- the exchange filter
    SELECT * FROM candles('BTCUSDT', INTERVAL 100 MILLISECOND, t0, t1);  -- below 1 s: from the trades
    SELECT * FROM realized_volatility('BTCUSDT', INTERVAL 5 MINUTE, t0, t1);

`candles` rolls up the 1 s bars of `ohlc` at a step of 1 s or more, and aggregates the trades of
`trades` at a step below 1 s, exactly, by the rules the job makes its 1 s bars with
(`jobs.bars.bar_updates`): open and close are the prices of the first and last trade by
(event_time, trade_id), as are the first and last trade ids; high and low the extreme prices;
volume, quote volume (price * quantity) and buy and sell volume are exact decimal sums, buy
being the taker buys (`is_buyer_maker` false); vwap = quote volume / volume. Both branches give
the same columns and types. `bars` is the number of 1 s windows in the candle that hold trades:
its 1 s bars, or from trades the distinct seconds of its trades (1 for a step that divides a
second; 2 when a candle such as a 300 ms one straddles a second).

Each branch is guarded by the step, a constant once the macro is expanded, so DuckDB plans the
other as an empty result: a call at 1 s or more does not scan `trades` (and does not bind it:
see NO_TRADES), one below 1 s does not scan `ohlc`.

Both macros cover rows with `start <= time < end` (a bar's window_start, a trade's event_time),
in buckets `time_bucket(step, time)` aligned to UTC midnight. The range also filters the `date`
partition column, so only the partitions in range are read.
"""

from __future__ import annotations

from core.schema import TRADES, duckdb_type

# The timeframes every reader offers (dashboard pickers, the API's `interval=`): each divides a day.
INTERVALS_S: dict[str, int] = {"1s": 1, "5s": 5, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

# Seconds in a year for annualizing: crypto trades every day of the year.
SECONDS_PER_YEAR = 365 * 24 * 3600

# Candles finer than the 1 s bars come from the trades.
FROM_TRADES_BELOW = "INTERVAL 1 SECOND"

# DuckDB binds both branches of the UNION before it drops the one whose guard is false, and
# binding the `trades` view costs in proportion to its files (~15 ms a call at 1,500 files, as an
# uncompacted day leaves them). So the trades branch names its table through `query_table`, which
# binds only the one named: `trades` below 1 s, else this empty view of the same columns.
NO_TRADES = "candles_no_trades"
NO_TRADES_VIEW = (
    f"CREATE OR REPLACE VIEW {NO_TRADES} AS SELECT "
    + ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in TRADES)
    + " WHERE false"
)


def _in_range(alias: str, time: str) -> str:
    return f"""{alias}.symbol = symbol_
      AND (venue IS NULL OR {alias}.exchange = venue)
      AND {alias}.{time} >= start_ AND {alias}.{time} < end_
      AND {alias}.date BETWEEN CAST(start_ AS DATE) AND CAST(end_ AS DATE)"""


def _bucket(alias: str, time: str) -> str:
    return f"""
    {alias}.exchange AS exchange,
    {alias}.symbol AS symbol,
    time_bucket(step_, {alias}.{time}) AS bucket_start,
    time_bucket(step_, {alias}.{time}) + step_ AS bucket_end,"""


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


def trade_aggregates() -> str:
    """A candle's columns from trades aliased `ticks`, by the rules of `jobs.bars.bar_updates`
    (a 1 s candle from trades is the job's bar), in the types of `candle_aggregates`' columns."""
    order = "(ticks.event_time, ticks.trade_id)"  # ties in time resolve by trade id, as in the job
    zero = "CAST(0 AS DECIMAL(18,8))"
    # DECIMAL(38,16), exact: DuckDB multiplies two DECIMAL(18,8)s in 64 bits, which overflows.
    quote = "CAST(ticks.price AS DECIMAL(38,8)) * ticks.quantity"
    return f"""
    arg_min(ticks.price, {order}) AS open,
    max(ticks.price) AS high,
    min(ticks.price) AS low,
    arg_max(ticks.price, {order}) AS close,
    sum(ticks.quantity) AS volume,
    sum({quote}) AS quote_volume,
    CAST(sum({quote}) AS DOUBLE) / NULLIF(CAST(sum(ticks.quantity) AS DOUBLE), 0) AS vwap,
    CAST(count(*) AS BIGINT) AS trade_count,
    sum(CASE WHEN ticks.is_buyer_maker THEN {zero} ELSE ticks.quantity END) AS buy_volume,
    sum(CASE WHEN ticks.is_buyer_maker THEN ticks.quantity ELSE {zero} END) AS sell_volume,
    arg_min(ticks.trade_id, {order}) AS first_trade_id,
    arg_max(ticks.trade_id, {order}) AS last_trade_id,
    CAST(count(DISTINCT time_bucket(INTERVAL 1 SECOND, ticks.event_time)) AS BIGINT) AS bars"""


def candles_macro(from_trades_below: str = FROM_TRADES_BELOW) -> str:
    """The `candles` macro: from trades at a step below `from_trades_below`, else from the 1 s bars.
    (Tests raise the threshold to compare the two branches at the same step.)"""
    below = f"step_ < {from_trades_below}"
    return f"""
CREATE OR REPLACE MACRO candles(symbol_, step_, start_, end_, venue := NULL) AS TABLE
SELECT{_bucket("bars", "window_start")}{candle_aggregates()}
FROM ohlc AS bars
WHERE NOT ({below})
      AND {_in_range("bars", "window_start")}
GROUP BY ALL
UNION ALL
SELECT{_bucket("ticks", "event_time")}{trade_aggregates()}
FROM query_table(CASE WHEN {below} THEN 'trades' ELSE '{NO_TRADES}' END) AS ticks
WHERE {below}
      AND {_in_range("ticks", "event_time")}
GROUP BY ALL
ORDER BY ALL
"""


CANDLES = candles_macro()

REALIZED_VOLATILITY = f"""
CREATE OR REPLACE MACRO realized_volatility(symbol_, step_, start_, end_, venue := NULL) AS TABLE
SELECT{_bucket("bars", "window_start")}
    count(bars.log_return) AS returns,
    stddev_samp(bars.log_return) AS volatility,
    sqrt(sum(bars.log_return * bars.log_return)) AS realized_vol,
    sqrt(sum(bars.log_return * bars.log_return) * {SECONDS_PER_YEAR} / epoch(step_)) AS realized_vol_annualized
FROM volatility AS bars
WHERE {_in_range("bars", "window_start")}
GROUP BY ALL
ORDER BY ALL
"""

MACROS = (NO_TRADES_VIEW, CANDLES, REALIZED_VOLATILITY)  # in this order: CANDLES names the view
