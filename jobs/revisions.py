"""Revisions: trades that come after their bar was written revise it, from lake/trades.

A trade is late when its 1-second window had already been released to lake/ohlc, or Spark's
watermark had passed it (`jobs.tick_writer`). It is stored in lake/trades all the same, marked
late, and the windows of a batch's late trades are then computed again from lake/trades, from
every trade the table holds for them (`bars_from_trades`: the job's bar rules, as the live
bars apply them, `jobs.forming_bars`):

- a window the closer releases in this very batch is written as computed from lake/trades
  (revision 0: nobody saw it before);
- a window released before is merged into lake/ohlc (Delta MERGE): its values replaced,
  `revision` + 1 and `revised_at` set; a window that had no bar gets one, revision 1. Time
  travel still shows the table as it was before;
- a window the closer still holds open (Spark dropped a trade of it, but another Kafka
  partition holds the closer's watermark back) waits, `pending`, until it is released.

The volatility rows that depend on a revised bar (its own, the next bar's return, and every
row whose trailing window holds either) are computed again by replaying the key's bars from
lake/ohlc with the revisions in place (`replay_volatility`); the rows that differ are merged
into lake/volatility the same way, and the job's volatility state for the key becomes the
replay's, so later rows use the revised returns.

Pure logic over Arrow tables, plus reads of the lake through delta-rs; `jobs.lake_sink` commits
what it returns, in the batch's one commit per table.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from core.schema import BAR_MS, OHLC, to_arrow
from jobs.forming_bars import Window
from jobs.volatility import VolatilityState, volatility_rows

Key = tuple[str, str, int]  # exchange, symbol, window_start in epoch µs (as `jobs.bar_closer`)
BAR_US = BAR_MS * 1000
TRADE_COLUMNS = ["exchange", "symbol", "trade_id", "price", "quantity", "event_time", "is_buyer_maker"]
OHLC_SCHEMA = to_arrow(OHLC)


# -- which windows ----------------------------------------------------------------------------


def late_keys(files: pa.Table) -> set[Key]:
    """The windows of the late trades in a batch's TRADE_FILE rows (`jobs.tick_writer`)."""
    keys: set[Key] = set()
    if not files.num_rows or "late_windows" not in files.column_names:
        return keys
    for symbol, windows in zip(
        files.column("symbol").to_pylist(), files.column("late_windows").to_pylist(), strict=True
    ):
        keys.update((str(e), str(symbol), int(t)) for e, t in json.loads(windows or "[]"))
    return keys


def encode_keys(keys: Iterable[Key]) -> str:
    return json.dumps(sorted(keys), separators=(",", ":"))


def decode_keys(text: str | None) -> set[Key]:
    return {(str(e), str(s), int(t)) for e, s, t in json.loads(text or "[]")}


def split_due(keys: set[Key], floor_us: int | None) -> tuple[set[Key], set[Key]]:
    """(due, pending): a window is due once the closer's watermark has reached its end."""
    due = {k for k in keys if floor_us is not None and k[2] + BAR_US <= floor_us}
    return due, keys - due


def keys_of(bars: pa.Table) -> list[Key]:
    starts = pc.cast(bars.column("window_start"), pa.int64()).to_pylist()
    return list(zip(bars.column("exchange").to_pylist(), bars.column("symbol").to_pylist(), starts, strict=True))


def _date(us: int) -> dt.date:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).date()


def _stamp(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


# -- bars from lake/trades --------------------------------------------------------------------


def trades_of(table: DeltaTable, keys: set[Key]) -> pa.Table:
    """Every trade lake/trades holds for the windows `keys` (partitions and times pruned)."""
    if not keys:
        return pa.table({c: [] for c in TRADE_COLUMNS})
    data = table.to_pyarrow_dataset()
    symbols = sorted({k[1] for k in keys})
    dates = sorted({_date(k[2]) for k in keys})
    start, end = min(k[2] for k in keys), max(k[2] for k in keys) + BAR_US
    time_type = data.schema.field("event_time").type
    where = (
        ds.field("symbol").isin(symbols)
        & ds.field("date").isin(pa.array(dates, pa.date32()))
        & (ds.field("event_time") >= pa.scalar(_stamp(start), time_type))
        & (ds.field("event_time") < pa.scalar(_stamp(end), time_type))
    )
    rows = data.to_table(filter=where, columns=TRADE_COLUMNS)
    micros = pc.cast(pc.cast(rows.column("event_time"), pa.timestamp("us", "UTC")), pa.int64()).to_pylist()
    inside = [
        (e, s, t - t % BAR_US) in keys
        for e, s, t in zip(rows.column("exchange").to_pylist(), rows.column("symbol").to_pylist(), micros, strict=True)
    ]
    return rows.filter(pa.array(inside, pa.bool_()))


def bars_from_trades(trades: pa.Table) -> pa.Table:
    """`core.schema.OHLC` rows of `trades` (each trade once), one per (exchange, symbol, second),
    by the job's rules; sorted by key."""
    windows: dict[tuple[str, str, int], Window] = {}
    micros = pc.cast(pc.cast(trades.column("event_time"), pa.timestamp("us", "UTC")), pa.int64()).to_pylist()
    columns = [trades.column(c).to_pylist() for c in ("exchange", "symbol", "trade_id", "price", "quantity",
                                                       "is_buyer_maker")]  # fmt: skip
    for (exchange, symbol, trade_id, price, quantity, buyer_maker), t in zip(zip(*columns, strict=True), micros,
                                                                             strict=True):  # fmt: skip
        ts = t // 1000  # the trade's time in ms, as the job orders by it
        start = ts - ts % BAR_MS
        key = (exchange, symbol, start)
        window = windows.get(key)
        if window is None:
            window = Window(exchange, symbol, start, (ts, trade_id), (ts, trade_id), price, price, price, price)
            windows[key] = window
        window.add(ts, trade_id, price, quantity, buyer_maker)
    rows = []
    for key in sorted(windows):
        bar = windows[key].bar(final=True)
        start_us = bar["window_start"] * 1000
        rows.append(
            {
                **{c: bar[c] for c in OHLC_SCHEMA.names if c in bar},
                "window_start": _stamp(start_us),
                "window_end": _stamp(start_us + BAR_US),
                "date": _date(start_us),
            }
        )
    return pa.Table.from_pylist(rows, schema=OHLC_SCHEMA)


# -- reading lake/ohlc and lake/volatility ----------------------------------------------------


def rows_between(table: DeltaTable, exchange: str, symbol: str, after_us: int, until_us: int) -> pa.Table:
    """The table's rows of one key with window_start in (after_us, until_us]."""
    data = table.to_pyarrow_dataset()
    time_type = data.schema.field("window_start").type
    first, last = _date(after_us + 1), _date(until_us)
    dates = pa.array([first + dt.timedelta(days=d) for d in range((last - first).days + 1)], pa.date32())
    where = (
        (ds.field("symbol") == symbol)
        & ds.field("date").isin(dates)
        & (ds.field("exchange") == exchange)
        & (ds.field("window_start") > pa.scalar(_stamp(after_us), time_type))
        & (ds.field("window_start") <= pa.scalar(_stamp(until_us), time_type))
    )
    return data.to_table(filter=where)


def last_bar_at_or_before(table: DeltaTable, exchange: str, symbol: str, at_us: int) -> tuple[int, float] | None:
    """(window_start ms, close) of the key's newest bar at or before `at_us`, of any age."""
    data = table.to_pyarrow_dataset()
    time_type = data.schema.field("window_start").type
    actions = table.get_add_actions(flatten=True)
    actions = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    days = {
        d for s, d in zip(actions.column("partition.symbol").to_pylist(), actions.column("partition.date").to_pylist(),
                          strict=True)
        if s == symbol and d is not None and d <= _date(at_us)
    }  # fmt: skip
    for day in sorted(days, reverse=True):
        where = (
            (ds.field("symbol") == symbol)
            & (ds.field("date") == pa.scalar(day, pa.date32()))
            & (ds.field("exchange") == exchange)
            & (ds.field("window_start") <= pa.scalar(_stamp(at_us), time_type))
        )
        rows = data.to_table(filter=where, columns=["window_start", "close"])
        if rows.num_rows:
            newest = rows.sort_by([("window_start", "descending")]).slice(0, 1).to_pylist()[0]
            return _micros(newest["window_start"]) // 1000, float(newest["close"])
    return None


# -- volatility -------------------------------------------------------------------------------


def replay_volatility(
    ohlc: DeltaTable,
    key: tuple[str, str],
    revised: pa.Table,
    until_ms: int,
    windows_s: tuple[int, ...],
) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """The volatility rows of one key from its earliest revised bar to `until_ms` (its newest
    bar through the volatility state), with `revised` (its revised bars) in place of lake/ohlc's,
    and the state after them."""
    exchange, symbol = key
    starts = pc.cast(revised.column("window_start"), pa.int64()).to_pylist()
    first_us = min(starts)
    longest_us = max(windows_s) * 1_000_000
    seed_at = first_us - longest_us
    seed = last_bar_at_or_before(ohlc, exchange, symbol, seed_at)
    state: tuple[Any, ...] | None = None if seed is None else (seed[0], seed[1], [], [])
    stored = rows_between(ohlc, exchange, symbol, seed_at, max(until_ms * 1000, max(starts)))
    bars = stored.select(["exchange", "symbol", "window_start", "close", "date"]).to_pandas()
    fresh = revised.select(["exchange", "symbol", "window_start", "close", "date"]).to_pandas()
    bars = pd.concat([bars[~bars["window_start"].isin(fresh["window_start"])], fresh], ignore_index=True)
    rows, state_after = volatility_rows(bars, state, windows_s)
    first = _stamp(first_us)
    return [r for r in rows if pd.Timestamp(r["window_start"]) >= first], state_after


def changed_rows(computed: list[dict[str, Any]], stored: pa.Table) -> list[dict[str, Any]]:
    """The rows of `computed` that `stored` (the table's rows of the same span) lacks or holds
    with other values (compared column by column, exactly)."""

    def key(row: dict[str, Any]) -> tuple[str, str, int]:
        return row["exchange"], row["symbol"], _micros(row["window_start"])

    have = {key(r): r for r in stored.to_pylist()}
    out = []
    for row in computed:
        old = have.get(key(row))
        if old is None or any(_value(row[c]) != _value(old.get(c)) for c in row if c not in ("window_start", "date")):
            out.append(row)
    return out


def _micros(t: Any) -> int:
    return int(pd.Timestamp(t).value // 1000)


def _value(v: Any) -> Any:
    """None for a missing float (NaN or null), else the value."""
    return None if v is None or (isinstance(v, float) and v != v) else v


# -- one batch's revisions --------------------------------------------------------------------


@dataclass
class Revisions:
    """What a batch's due windows change, for the sink to commit."""

    final: pa.Table  # the batch's released bars: due ones recomputed, new windows past the key's newest added
    ohlc: pa.Table  # bars released before, recomputed (revision 1 where inserted), to merge into lake/ohlc
    volatility: list[dict[str, Any]]  # volatility rows that changed, to merge into lake/volatility
    windows: int  # windows recomputed
    revised: set[Key] = field(default_factory=set)  # the windows whose bars changed after release
    last_trade_ms: dict[Key, int] = field(default_factory=dict)  # each window's newest trade, epoch ms


def revise(
    due: set[Key],
    final: pa.Table,
    trades: DeltaTable,
    ohlc: DeltaTable,
    volatility: DeltaTable | None,
    state: VolatilityState | None,
    revised_at: dt.datetime,
) -> Revisions:
    """The due windows from lake/trades; patches `state` (the volatility state before the batch's
    own bars) for every key whose bars it replays."""
    ticks = trades_of(trades, due)
    bars = bars_from_trades(ticks)
    final_keys = set(keys_of(final))
    recomputed = keys_of(bars)
    in_final = [k in final_keys for k in recomputed]
    # the batch's own releases, as lake/trades has them (revision 0: never seen before)
    final = pa.concat_tables([
        final.filter(pa.array([k not in due for k in keys_of(final)], pa.bool_())),
        bars.filter(pa.array(in_final, pa.bool_())).cast(final.schema),
    ]).sort_by([("exchange", "ascending"), ("symbol", "ascending"), ("window_start", "ascending")])  # fmt: skip
    before = bars.filter(pa.array([not x for x in in_final], pa.bool_()))
    newest = {key: s[0] for key, s in state.keys.items()} if state is not None else {}
    # a window past the key's newest bar through the volatility state is new to every table:
    # it goes with the batch's own bars (in time order), marked as revised in
    past = [
        state is not None and (k[0], k[1]) in newest and k[2] // 1000 <= newest[(k[0], k[1])] for k in keys_of(before)
    ]
    later = _marked(before.filter(pa.array([not p for p in past], pa.bool_())), revised_at)
    earlier = _marked(before.filter(pa.array(past, pa.bool_())), revised_at)
    if later.num_rows:
        marked = _marked(final, None)  # the batch's bars are nullable; bars_from_trades' are not
        final = pa.concat_tables([marked, later.cast(marked.schema)]) if final.num_rows else later
    changed: list[dict[str, Any]] = []
    if state is not None and volatility is not None and earlier.num_rows:
        for exchange, symbol in sorted({(k[0], k[1]) for k in keys_of(earlier)}):
            mine = earlier.filter(pc.and_(pc.equal(earlier["exchange"], exchange), pc.equal(earlier["symbol"], symbol)))
            until_ms = newest[(exchange, symbol)]
            rows, state.keys[(exchange, symbol)] = replay_volatility(ohlc, (exchange, symbol), mine, until_ms,
                                                                     state.windows_s)  # fmt: skip
            first_us = min(pc.cast(mine["window_start"], pa.int64()).to_pylist())
            stored = rows_between(volatility, exchange, symbol, first_us - 1, until_ms * 1000)
            for row in changed_rows(rows, stored):  # a stored row's revision the merge counts up
                row["revision"], row["revised_at"] = 1, revised_at
                changed.append(row)
    revised = set(keys_of(earlier)) | set(keys_of(later))
    return Revisions(final, earlier, changed, bars.num_rows, revised, last_trade_times(ticks))


def _marked(bars: pa.Table, revised_at: dt.datetime | None) -> pa.Table:
    """`bars` with the revision columns: 1 and `revised_at`, or 0 and null (None)."""
    bars = bars.drop_columns([c for c in ("revision", "revised_at") if c in bars.column_names])
    n = bars.num_rows
    return bars.append_column("revision", pa.array([0 if revised_at is None else 1] * n, pa.int64())).append_column(
        "revised_at", pa.array([revised_at] * n, pa.timestamp("us", "UTC"))
    )


# -- after the commit -------------------------------------------------------------------------

# A lake/trades commit with late trades records their windows in its metadata, for a re-run of
# the batch that finds the trades committed and its tasks write nothing.
LATE_WINDOWS, LATE_BATCH = "stream_ohlc.late_windows", "stream_ohlc.batch"
HISTORY_SCANNED = 200


def commit_metadata(late: set[Key], app_id: str, batch_id: int) -> dict[str, str] | None:
    return {LATE_WINDOWS: encode_keys(late), LATE_BATCH: f"{app_id}/{batch_id}"} if late else None


def committed_late_keys(table: DeltaTable, app_id: str, batch_id: int) -> set[Key]:
    """The late windows of batch `batch_id` as its lake/trades commit recorded them (none if the
    table does not hold the batch)."""
    held = table.transaction_version(app_id)
    if held is None or held < batch_id:
        return set()
    mark = f"{app_id}/{batch_id}"
    for info in table.history(limit=HISTORY_SCANNED):
        if info.get(LATE_BATCH) == mark:
            return decode_keys(info.get(LATE_WINDOWS))
    return set()


def last_trade_times(trades: pa.Table) -> dict[Key, int]:
    """Each window's newest trade time, epoch ms."""
    micros = pc.cast(pc.cast(trades.column("event_time"), pa.timestamp("us", "UTC")), pa.int64()).to_pylist()
    out: dict[Key, int] = {}
    for e, s, t in zip(trades.column("exchange").to_pylist(), trades.column("symbol").to_pylist(), micros, strict=True):
        key = (e, s, t - t % BAR_US)
        out[key] = max(out.get(key, 0), t // 1000)
    return out


def live_bars(ohlc: DeltaTable, keys: set[Key], last_trade_ms: dict[Key, int]) -> list[dict[str, Any]]:
    """The bars of `keys` as lake/ohlc holds them now, as `core.schema.LIVE_BAR` fields (final,
    with their revision) but `v` and `emitted_at`."""
    if not keys:
        return []
    data = ohlc.to_pyarrow_dataset()
    time_type = data.schema.field("window_start").type
    where = (
        ds.field("symbol").isin(sorted({k[1] for k in keys}))
        & ds.field("date").isin(pa.array(sorted({_date(k[2]) for k in keys}), pa.date32()))
        & (ds.field("window_start") >= pa.scalar(_stamp(min(k[2] for k in keys)), time_type))
        & (ds.field("window_start") <= pa.scalar(_stamp(max(k[2] for k in keys)), time_type))
    )
    out = []
    for row in data.to_table(filter=where).to_pylist():
        start_us = _micros(row["window_start"])
        key = (row["exchange"], row["symbol"], start_us)
        if key not in keys:
            continue
        bar = {name: row[name] for name in OHLC_SCHEMA.names if name != "date"}
        bar.update(window_start=start_us // 1000, window_end=start_us // 1000 + BAR_MS, final=True,
                   revision=row["revision"], last_trade_ts=last_trade_ms.get(key, start_us // 1000))  # fmt: skip
        out.append(bar)
    return out
