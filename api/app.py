"""The FastAPI app: `create_app(settings)`, the wiring of the parts and the routers (`api.routes`).
Served by `python -m api` (uvicorn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from api import stream
from api.deps import ApiState, Problem, require_key
from api.lake_access import LakeAccess, LakeUnavailable
from api.offsets import Offsets
from api.responses import ERRORS, json_response
from api.rollups import MinuteRollups, Warmer
from api.routes import ROUTERS, WEBSOCKET_ROUTERS
from api.time_limit import TimeLimit
from core.live_tail import LiveFeed
from core.settings import Settings

PREFIX = "/v1"


def build_state(settings: Settings, feed: LiveFeed | None = None) -> ApiState:
    """The app's parts over `settings.lake.path` and `settings.kafka.live_bars_topic`."""
    rollups = MinuteRollups()
    warmer = Warmer(rollups, settings.api.warm_days)
    feed = feed or LiveFeed(settings.kafka.bootstrap_servers, settings.kafka.live_bars_topic, client_id="api")
    return ApiState(
        cfg=settings.api,
        lake=LakeAccess(settings.lake.path, on_snapshot=warmer.offer),
        feed=feed,
        broadcaster=stream.Broadcaster(feed, settings.api.stream_queue),
        rollups=rollups,
        warmer=warmer,
        offsets=Offsets(settings),
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"detail": "…"}` with its status."""

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> Response:
        return json_response({"detail": exc.detail}, exc.status)

    @app.exception_handler(LakeUnavailable)
    async def unavailable(_: Request, exc: LakeUnavailable) -> Response:
        return json_response({"detail": str(exc)}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return json_response({"detail": f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg")}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)


def create_app(settings: Settings | None = None, feed: LiveFeed | None = None) -> FastAPI:
    """The app over `settings.lake.path` and `settings.kafka.live_bars_topic`.

    `feed`: the live-bars tail to use (tests pass one); by default one is started with the app.
    """
    settings = settings or Settings()
    state = build_state(settings, feed)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.warmer.start()
        await asyncio.to_thread(state.lake.start)
        state.broadcaster.attach(asyncio.get_running_loop())
        if state.feed._thread is None:
            state.feed.start()
        try:
            yield
        finally:
            state.lake.stop()
            state.warmer.stop()
            state.feed.stop(timeout_s=0.2)  # a daemon thread: it closes its consumer when it sees the flag

    app = FastAPI(
        title="crypto-lakehouse API",
        version="1",
        summary="Read-only: 1 s bars, candles, trades, volatility and health from the lake; forming bars live.",
        lifespan=lifespan,
    )
    app.state.api = state
    add_error_handlers(app)
    http = APIRouter(prefix=PREFIX, dependencies=[Depends(require_key)], responses=ERRORS)
    for router in ROUTERS:
        http.include_router(router)
    app.include_router(http)
    for router in WEBSOCKET_ROUTERS:
        app.include_router(router, prefix=PREFIX)
    cfg = settings.api
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
            expose_headers=["Link", "X-Next-Cursor"],  # /v1/trades' paging, readable by browser clients
        )
    app.add_middleware(TimeLimit, seconds=cfg.request_timeout_s)
    app.add_middleware(stream.RawSend)  # outermost: it sees the server's own send
    app.state.rollups = state.rollups  # what the tests look at (app.state.api's)
    return app
