"""`GET /v1/latest`: a market's newest final bar (the lake's, or a newer one from the live topic)
and the forming one."""

from typing import Any

from fastapi import APIRouter, Response

from api import queries, schemas
from api.deps import State
from api.encoding import from_ms
from api.params import Exchange, Symbol, market
from api.responses import json_response

router = APIRouter()


def bar(row: dict[str, Any], source: str) -> dict[str, Any]:
    out = {k: row[k] for k in schemas.Bar.model_fields if k in row}
    if source == "live":
        out["window_start"], out["window_end"] = from_ms(row["window_start"]), from_ms(row["window_end"])
    out["final"] = bool(row.get("final", True))
    out["source"] = source
    return out


@router.get("/latest", response_model=schemas.Latest, summary="The newest final bar and the forming one")
def latest(state: State, exchange: Exchange, symbol: Symbol) -> Response:
    live = state.feed.store.bars(exchange, symbol)
    with state.lake.cursor() as (snap, cur):
        if (exchange, symbol) not in snap.newest and not live:
            market(snap, exchange, symbol)
        in_lake = queries.newest_final_bar(cur, exchange, symbol)
    final = None if in_lake is None else bar(in_lake, "lake")
    lake_ms = int(in_lake["window_start"].timestamp() * 1000) if in_lake else -1
    live_final = [b for b in live if b["final"] and b["window_start"] > lake_ms]
    if live_final:
        final = bar(live_final[-1], "live")
        lake_ms = live_final[-1]["window_start"]
    forming = [b for b in live if not b["final"] and b["window_start"] > lake_ms]
    provisional = bar(forming[-1], "live") if forming else None
    return json_response(
        {
            "exchange": exchange,
            "symbol": symbol,
            "final": final,
            "provisional": provisional,
            "live_stream": state.feed.status,
        }
    )
