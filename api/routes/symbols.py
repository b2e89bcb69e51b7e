"""`GET /v1/symbols`: the markets the lake holds, with their first and newest bar."""

from fastapi import APIRouter, Response

from api import schemas
from api.deps import State
from api.responses import json_response

router = APIRouter()


@router.get("/symbols", response_model=schemas.Symbols, summary="Exchanges and symbols, first and newest bar")
def symbols(state: State) -> Response:
    snap = state.lake.snapshot()
    firsts = snap.firsts()
    rows = [
        {
            "exchange": e,
            "symbol": s,
            "first_bar": firsts.get((e, s), n.start),
            "newest_bar": n.start,
            "newest_bar_end": n.end,
        }
        for (e, s), n in sorted(snap.newest.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    return json_response({"markets": rows})
