"""`GET /v1/trades`' rules: the range a request asks for, its keyset cursor and where a page ends.

A page is found in two steps, both over one snapshot (so they agree): `page_end` reads only the
keys, a date partition at a time until the page is full, so a page far from the end of a wide
range does not scan the rest of it; then the rows after the cursor up to that last key are read
in one query (`queries.trades`), bounded at both ends, which a file download streams. Knowing the
last key first is what lets a streamed file carry the next cursor in its headers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from api import queries
from api.deps import Problem
from api.params import EARLIEST, LATEST, utc
from api.queries import TradeKey

DEFAULT_PAGE = 1000  # rows per page without limit= (at most API_MAX_ROWS)
DEFAULT_WINDOW = dt.timedelta(minutes=1)  # without start= (and without after=): this long before end
CURSOR_PATTERN = r"^[0-9]{1,19}_-?[0-9]{1,19}$"  # <event_time, epoch microseconds>_<trade_id>
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_INT64 = 2**63


def encode_cursor(key: TradeKey) -> str:
    """A trade's key as `after=` takes it: its event_time in epoch microseconds, `_`, its trade_id.

    Integers, so the key round-trips exactly (a time printed at ms precision would not be unique)."""
    return f"{(key[0] - _EPOCH) // _US}_{key[1]}"


def decode_cursor(text: str) -> TradeKey:
    """`after=`'s key; 400 for a key no trade can have (the pattern is checked first, as 422)."""
    if not _CURSOR.fullmatch(text):
        raise Problem(400, f"after: {text!r} is not a cursor (a `next` of this endpoint: <epoch µs>_<trade id>)")
    micros, trade_id = (int(part) for part in text.split("_"))
    if not (EARLIEST - _EPOCH) // _US <= micros < (LATEST - _EPOCH) // _US:
        raise Problem(400, f"after: the cursor's time is outside {EARLIEST.year}..{LATEST.year - 1}")
    if not -_INT64 <= trade_id < _INT64:
        raise Problem(400, "after: the cursor's trade id is not a 64-bit integer")
    return _EPOCH + micros * _US, trade_id


@dataclass(frozen=True)
class TradeRange:
    """[start, end) of a request, resolved, and where its page begins: after `after`, from `lower`."""

    start: dt.datetime
    end: dt.datetime
    lower: dt.datetime
    after: TradeKey

    @property
    def days(self) -> tuple[dt.date, dt.date]:
        """The first and last date partition the range can hold rows in (end is exclusive)."""
        return self.lower.date(), (self.end - _US).date()


def resolve(
    start: dt.datetime | None, end: dt.datetime | None, after: TradeKey | None, newest_end: dt.datetime
) -> TradeRange:
    """The range: end defaults to `newest_end`, the market's newest final bar's end (lake/trades runs
    ahead of the bars, but trades before the watermark may still come in out of order: a client
    tailing with cursors would step past them); start to the cursor's time with `after=` (so a
    client following cursors alone skips no row), else to DEFAULT_WINDOW before end. 400 for an
    explicit start at or after end."""
    start, end = utc(start), utc(end)
    if end is None:
        end = newest_end
    if start is None:
        # A cursor at or past end: an empty range, not an error (a client tailing the lake has
        # read it all).
        start = min(after[0], end) if after else end - DEFAULT_WINDOW
    elif start >= end:
        raise Problem(400, f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    lower = max(start, after[0]) if after else start
    # Without a cursor, one just before `lower` stands in for it: every row in range is after it.
    return TradeRange(start, end, lower, after or (lower - _US, 0))


@dataclass(frozen=True)
class PageEnd:
    last: TradeKey | None  # the page's last row's key; None for an empty page
    more: bool  # rows in range follow it: the response gives a next cursor


def page_end(
    cur: duckdb.DuckDBPyConnection, exchange: str, symbol: str, days: Sequence[dt.date], span: TradeRange, size: int
) -> PageEnd:
    """Where a page of `size` rows ends, reading the keys of `days` (the symbol's date partitions,
    oldest first) in the range's order until the page is full and one more row is seen."""
    first, final = span.days
    last: TradeKey | None = None
    taken = 0
    for day in days:
        if not first <= day <= final:
            continue
        # One more than the page still needs: that row tells whether the page is the last.
        keys = queries.trade_keys(cur, exchange, symbol, day, span.lower, span.end, span.after, size - taken + 1)
        if keys.num_rows:
            row = min(keys.num_rows, size - taken) - 1
            if row >= 0:  # else the page was full after the previous day; this day only says "more"
                last = (keys.column("event_time")[row].as_py(), keys.column("trade_id")[row].as_py())
            if keys.num_rows > size - taken:
                return PageEnd(last, True)
            taken += keys.num_rows
    return PageEnd(last, False)


def empty_bound(span: TradeRange) -> TradeKey:
    """An upper key below the page's lower bound: `queries.trades` then gives its typed, empty result."""
    return span.lower - _US, 0
