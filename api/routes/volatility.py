"""`GET /v1/volatility`: the job's volatility rows, or the `realized_volatility()` macro at an interval."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api import queries, schemas
from api.deps import State
from api.params import Exchange, Interval, Symbol, When, market, row_limit, span
from api.responses import json_response
from lake.macros import INTERVALS_S

router = APIRouter()


@router.get(
    "/volatility", response_model=schemas.Volatility, summary="The job's volatility rows, or realized_volatility()"
)
def volatility(
    state: State,
    exchange: Exchange,
    symbol: Symbol,
    limit: Annotated[int | None, Depends(row_limit)],
    start: When = None,
    end: When = None,
    interval: Annotated[Interval | None, Query(description="buckets of the realized_volatility() macro")] = None,
) -> Response:
    step_s = INTERVALS_S[interval] if interval else 1
    with state.lake.cursor() as (snap, cur):
        market(snap, exchange, symbol)
        first, last, fetch, truncated = span(state.cfg, snap, exchange, symbol, step_s, start, end, limit)
        if interval:
            table = queries.realized_volatility(cur, exchange, symbol, step_s, first, last, fetch + 1)
        else:
            table = queries.volatility(cur, exchange, symbol, snap.windows, first, last, fetch + 1)
    truncated = truncated or table.num_rows > fetch
    rows = table.slice(0, fetch).to_pylist()  # NaN (a first bar's return) becomes null in `dumps`
    return json_response(
        {
            "exchange": exchange,
            "symbol": symbol,
            "start": first,
            "end": last,
            "interval": interval,
            "truncated": truncated,
            "columns": table.column_names,
            "rows": rows,
        }
    )
