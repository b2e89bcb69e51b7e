"""`GET /v1/trades`: one market's trades (lake/trades) in a time range, a page at a time.

Pages are keyset pages over (event_time, trade_id) (`api.trades`); JSON is built in memory (a
page is at most API_MAX_ROWS), CSV, Parquet and Arrow stream from DuckDB's record batches."""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at run time.

import datetime as dt
from contextlib import ExitStack
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from api import queries, schemas
from api import trades as pages
from api.deps import State
from api.params import Exchange, Symbol, When, market, row_limit
from api.responses import FILE_CONTENT, json_response, stream_response

router = APIRouter()

BATCH_ROWS = 16_384  # rows per streamed batch: a CSV chunk of ~1.5 MB, a Parquet row group
_PAGING_HEADERS = {
    "X-Next-Cursor": {
        "description": "the `after=` of the next page; absent on the last page",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": '`<URL>; rel="next"`: this request with the next `after=` and the resolved start and end',
        "schema": {"type": "string"},
    },
}

DESCRIPTION = f"""Rows of lake/trades with `start <= event_time < end` of one exchange and symbol,
ordered by (event_time, trade_id): every accepted trade once, price and quantity exact.

- **Range**: `end` defaults to the end of the market's newest final 1 s bar (newer trades may
  still be joined by out-of-order ones; pass `end` to read them); `start` to the time of the
  `after=` cursor if one is given, else to {pages.DEFAULT_WINDOW.total_seconds():g} s before `end`.
  Only the `date` partitions in range are read. An explicit `start` at or after `end` is a 400.
- **Paging**: at most `limit` rows per page ({pages.DEFAULT_PAGE} by default, API_MAX_ROWS at most).
  When rows follow, the response gives the next page's cursor: `next` in JSON, and for every
  format the headers `X-Next-Cursor` and `Link: <...>; rel="next"` (this request with `after=`
  and the resolved `start` and `end`, so following it pages through one fixed range). Keyset
  paging: the pages hold every row in range exactly once, also when many trades share an
  event_time. A cursor is `<event_time in epoch microseconds>_<trade_id>` of a page's last row.
- **Formats**: `json`, with price and quantity as decimal strings at the lake's scale (never
  floats) and times as ISO 8601 UTC; `csv`, `parquet` and `arrow` (IPC stream) are streamed
  downloads of the same rows and columns, DECIMAL(18,8) kept in Parquet and Arrow.
- 404 for a market the lake holds no bars of.
"""


@router.get(
    "/trades",
    response_model=schemas.Trades,
    summary="One market's trades in [start, end), by (event_time, trade_id), a keyset page at a time",
    description=DESCRIPTION,
    responses={
        200: {
            "content": FILE_CONTENT,
            "headers": _PAGING_HEADERS,
        }
    },
)
def trades(
    state: State,
    request: Request,
    exchange: Exchange,
    symbol: Symbol,
    limit: Annotated[int | None, Depends(row_limit)],
    start: When = None,
    end: When = None,
    after: Annotated[
        str | None, Query(pattern=pages.CURSOR_PATTERN, description="a `next` cursor: the rows after that trade")
    ] = None,
    format: Annotated[Literal["json", "csv", "parquet", "arrow"], Query(description="json, or a file")] = "json",
) -> Response:
    size = limit or min(pages.DEFAULT_PAGE, state.cfg.max_rows)
    cursor = pages.decode_cursor(after) if after is not None else None
    with ExitStack() as stack:
        snap, cur = stack.enter_context(state.lake.cursor())
        market(snap, exchange, symbol)
        span = pages.resolve(start, end, cursor, snap.newest[(exchange, symbol)].end)
        page = pages.page_end(cur, exchange, symbol, snap.trade_days.get(symbol, ()), span, size)
        last = page.last or pages.empty_bound(span)
        reader = queries.trades(cur, exchange, symbol, span.lower, span.after, last, size, BATCH_ROWS)
        headers: dict[str, str] = {}
        if page.more and page.last is not None:
            following = pages.encode_cursor(page.last)
            headers = {
                "X-Next-Cursor": following,
                "Link": f'<{next_url(request, span.start, span.end, following)}>; rel="next"',
            }
        if format != "json":
            # The stream outlives this block: the cursor (and its snapshot) is closed when it ends.
            return stream_response(reader, format, f"{exchange}-{symbol}-trades", headers, stack.pop_all().close)
        rows = reader.read_all().to_pylist()
    body = {
        "exchange": exchange,
        "symbol": symbol,
        "start": span.start,
        "end": span.end,
        "after": after,
        "limit": size,
        "count": len(rows),
        "next": headers.get("X-Next-Cursor"),
        "trades": rows,
    }
    response = json_response(body)
    response.headers.update(headers)
    return response


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def next_url(request: Request, start: dt.datetime, end: dt.datetime, after: str) -> str:
    """This request's path and parameters, with the next cursor and the range made explicit: a
    reference relative to the request's URL (no scheme or host, which a proxy in front may change)."""
    params = {k: v for k, v in request.query_params.multi_items() if k not in ("start", "end", "after")}
    return f"{request.url.path}?{urlencode({**params, 'start': _iso(start), 'end': _iso(end), 'after': after})}"
