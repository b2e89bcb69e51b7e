"""`GET /v1/candles`: OHLCV candles at an interval, from the 1 s bars (the `candles()` macro's rules).

1-minute candles and their multiples come from the partitions' 1-minute rollups
(`api.rollups`) where those give the macro's answer; other intervals from the bars."""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at run time.

import datetime as dt
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Response

from api import queries, schemas
from api.candles import as_decimals, final_candles, roll_up, with_provisional
from api.candles_arrow import CANDLE_SCHEMA
from api.deps import ApiState, State
from api.encoding import dumps, from_ms
from api.lake_access import Snapshot
from api.params import Exchange, Interval, Symbol, When, market, row_limit, span
from api.responses import FILE_CONTENT, file_response, json_response
from lake.macros import INTERVALS_S

router = APIRouter()


@router.get(
    "/candles",
    response_model=schemas.Candles,
    summary="OHLCV candles at an interval, from the lake's 1 s bars (the candles() macro)",
    responses={200: {"content": FILE_CONTENT}},
)
def candles(
    state: State,
    exchange: Exchange,
    symbol: Symbol,
    limit: Annotated[int | None, Depends(row_limit)],
    interval: Interval = "1m",
    start: When = None,
    end: When = None,
    include_provisional: Annotated[bool, Query(description="append forming candles from the live bars")] = False,
    format: Annotated[Literal["json", "csv", "parquet", "arrow"], Query(description="json, or a file")] = "json",
) -> Response:
    step_s = INTERVALS_S[interval]
    live = state.feed.store.bars(exchange, symbol) if include_provisional else []
    with state.lake.cursor() as (snap, cur):
        market(snap, exchange, symbol)
        live_end = from_ms(max(b["window_end"] for b in live)) if live else None
        first, last, fetch, truncated = span(state.cfg, snap, exchange, symbol, step_s, start, end, limit, live_end)
        if step_s == 60 and format == "json" and not include_provisional:
            objects = minute_json(state, cur, snap, exchange, symbol, first, last, fetch + 1)
            if objects is not None:
                head = {"exchange": exchange, "symbol": symbol, "interval": interval, "start": first, "end": last,
                        "truncated": truncated or len(objects) > fetch}  # fmt: skip
                body = dumps(head)[:-1] + b',"candles":[' + b",".join(objects[:fetch]) + b"]}"
                return Response(body, media_type="application/json")
        rows = final_candles(candle_table(state, cur, snap, exchange, symbol, step_s, first, last, fetch + 1))
    truncated = truncated or len(rows) > fetch
    rows = rows[:fetch]
    if include_provisional and not truncated:
        newest = snap.newest[(exchange, symbol)].start
        rows = with_provisional(rows, live, newest, step_s, first, last)[:fetch]
    if format != "json":
        table = pa.Table.from_pylist([as_decimals(r) for r in rows], schema=CANDLE_SCHEMA)
        return file_response(table, format, f"{exchange}-{symbol}-{interval}")
    return json_response(
        {
            "exchange": exchange,
            "symbol": symbol,
            "interval": interval,
            "start": first,
            "end": last,
            "truncated": truncated,
            "candles": rows,
        }
    )


def rollups_in(
    state: ApiState, cur: Any, snap: Snapshot, symbol: str, first: dt.datetime, last: dt.datetime
) -> list[Any] | None:
    """The symbol's partitions in [first, last) as 1-minute rollups; None when the range is not
    minute-aligned (the rollups would not give the macro's answer)."""
    if first.timestamp() % 60 or last.timestamp() % 60:
        return None
    days = (first.date().isoformat(), (last - dt.timedelta(microseconds=1)).date().isoformat())
    return [
        state.rollups.get(cur, files)
        for (sym, day), files in sorted(snap.partitions.items())
        if sym == symbol and days[0] <= day <= days[1]
    ]


def in_range(table: pa.Table, exchange: str, first: dt.datetime, last: dt.datetime) -> pa.Array:
    times = table.column("bucket_start")
    return pc.and_(
        pc.equal(table.column("exchange"), exchange),
        pc.and_(pc.greater_equal(times, first), pc.less(times, last)),
    )


def candle_table(
    state: ApiState, cur: Any, snap: Snapshot, exchange: str, symbol: str, step_s: int, first: dt.datetime,
    last: dt.datetime, limit: int,
) -> pa.Table:  # fmt: skip
    """Candles from the 1-minute rollups when they give the same answer, else from the bars."""
    parts = rollups_in(state, cur, snap, symbol, first, last) if step_s % 60 == 0 else None
    if not parts:
        return queries.candles(cur, exchange, symbol, step_s, first, last, limit)  # also: an empty result, typed
    minutes = pa.concat_tables([p.table for p in parts])
    return roll_up(minutes.filter(in_range(minutes, exchange, first, last)), step_s).slice(0, limit)


def minute_json(
    state: ApiState, cur: Any, snap: Snapshot, exchange: str, symbol: str, first: dt.datetime, last: dt.datetime,
    limit: int,
) -> list[bytes] | None:  # fmt: skip
    """1-minute candles as JSON objects straight from the rollups; None where they do not apply."""
    parts = rollups_in(state, cur, snap, symbol, first, last)
    if not parts:
        return None
    out: list[bytes] = []
    for part in parts:
        objects = part.json_objects()
        out += [objects[i] for i in pc.indices_nonzero(in_range(part.table, exchange, first, last)).to_pylist()]
        if len(out) >= limit:
            break
    return out[:limit]
