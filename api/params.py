"""The request parameters the endpoints share, and the rules that turn them into a range of rows."""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.

import datetime as dt
import math
from typing import Annotated, Literal

from fastapi import Query

from api.deps import Problem, State
from api.encoding import from_ms
from api.lake_access import Snapshot
from core.settings import ApiSettings
from lake.macros import INTERVALS_S

Interval = Literal["1s", "5s", "1m", "5m", "15m", "1h", "1d"]
assert set(Interval.__args__) == set(INTERVALS_S), "keep Interval in step with lake.macros.INTERVALS_S"  # type: ignore[attr-defined]

DEFAULT_CANDLES = 500  # without start=: this many intervals before end
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

Exchange = Annotated[str, Query(pattern=r"^[a-z0-9]{1,32}$", description="venue, lower case: binance")]
Symbol = Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$", description="canonical symbol: BTCUSDT")]
When = Annotated[dt.datetime | None, Query(description="ISO 8601; without a zone, UTC")]


def row_limit(
    state: State, limit: Annotated[int | None, Query(ge=1, description="at most this many rows (API_MAX_ROWS)")] = None
) -> int | None:
    """`limit=`, at most the configured cap (checked as FastAPI checks `ge`, with its wording)."""
    if limit is not None and limit > state.cfg.max_rows:
        raise Problem(422, f"limit: Input should be less than or equal to {state.cfg.max_rows}")
    return limit


def utc(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if not EARLIEST <= t < LATEST:
        raise Problem(400, f"{t.isoformat()} is outside {EARLIEST.year}..{LATEST.year - 1}")
    return t


def floor(t: dt.datetime, step_s: int) -> dt.datetime:
    return from_ms(int(t.timestamp() * 1000) // (step_s * 1000) * step_s * 1000)


def ceil(t: dt.datetime, step_s: int) -> dt.datetime:
    down = floor(t, step_s)
    return down if down == t else down + dt.timedelta(seconds=step_s)


def market(snap: Snapshot, exchange: str, symbol: str) -> None:
    """404 unless the lake holds bars of the market."""
    if (exchange, symbol) not in snap.newest:
        raise Problem(404, f"the lake has no bars of {exchange}:{symbol}; GET /v1/symbols lists what it holds")


def span(
    cfg: ApiSettings,
    snap: Snapshot,
    exchange: str,
    symbol: str,
    step_s: int,
    start: dt.datetime | None,
    end: dt.datetime | None,
    limit: int | None,
    live_end: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime, int, bool]:
    """[start, end), the rows to fetch and whether `limit` cut the range; 413 over the cap."""
    start, end = utc(start), utc(end)
    if end is None:
        end = snap.newest[(exchange, symbol)].end
        end = max(end, live_end) if live_end else end
        end = ceil(end, step_s)
    if start is None:
        start = end - dt.timedelta(seconds=step_s * (limit or DEFAULT_CANDLES))
    if start >= end:
        raise Problem(400, f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    rows = math.ceil((end - floor(start, step_s)).total_seconds() / step_s)
    if limit is None and rows > cfg.max_rows:
        raise Problem(
            413,
            f"the range holds up to {rows:,} rows of {step_s} s; the cap is {cfg.max_rows:,} per request "
            "(API_MAX_ROWS): narrow start/end, use a coarser interval, or set limit",
        )
    fetch = min(limit or cfg.max_rows, cfg.max_rows)
    return start, end, fetch, limit is not None and rows > limit
