"""`WS /v1/stream/bars`: the live bars of the subscribed markets (`api.stream` does the pushing)."""

from typing import Annotated

from fastapi import APIRouter, Header, WebSocket

from api import stream
from api.deps import KEY_REQUIRED, api_state, key_ok

router = APIRouter()


@router.websocket("/stream/bars")
async def stream_bars(ws: WebSocket, symbols: str = "", x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Provisional updates, then the final bar, of each subscribed market's 1 s bars."""
    state = api_state(ws)
    if not key_ok(state.cfg, x_api_key):
        await ws.close(1008, KEY_REQUIRED)
        return
    await stream.serve(ws, state.broadcaster, symbols)
