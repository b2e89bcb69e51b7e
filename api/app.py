"""The FastAPI app: `create_app(settings)`. Served by `python -m api` (uvicorn)."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time,
# and some name local values (the configured row cap).

import asyncio
import datetime as dt
import hmac
import io
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import health, queries, schemas, stream
from api.candles import as_decimals, final_candles, roll_up, with_provisional
from api.candles_arrow import CANDLE_SCHEMA
from api.encoding import dumps, from_ms
from api.lake_access import LakeAccess, LakeUnavailable, Snapshot
from api.rollups import MinuteRollups, Warmer
from lake.broker_offsets import BrokerOffsetsUnavailable, consumer_lag, progress_offsets
from lake.broker_offsets import end_offsets as broker_end_offsets
from lake.live_tail import LiveFeed
from lake.macros import INTERVALS_S
from lake.sandbox import QueryRefused, run_query
from lake.settings import Settings

Interval = Literal["1s", "5s", "1m", "5m", "15m", "1h", "1d"]
assert set(Interval.__args__) == set(INTERVALS_S), "keep Interval in step with lake.macros.INTERVALS_S"  # type: ignore[attr-defined]

DEFAULT_CANDLES = 500  # without start=: this many intervals before end
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
OFFSETS_TTL_S = 5.0
ERRORS = {code: {"model": schemas.Problem} for code in (400, 404, 413, 422, 503)}

Exchange = Annotated[str, Query(pattern=r"^[a-z0-9]{1,32}$", description="venue, lower case: binance")]
Symbol = Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$", description="canonical symbol: BTCUSDT")]
When = Annotated[dt.datetime | None, Query(description="ISO 8601; without a zone, UTC")]


class Problem(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class TimeLimit:
    """A request still running after `seconds` gets 503 (if nothing was sent yet)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.seconds)
        except TimeoutError:
            if not started:
                body = dumps({"detail": f"the request ran longer than {self.seconds:g} s (API_REQUEST_TIMEOUT_S)"})
                await send(
                    {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})


class Offsets:
    """The broker's end offsets of the job's topics, cached for OFFSETS_TTL_S."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._at = -math.inf
        self._value: dict[str, dict[str, int]] | str = {}

    def get(self) -> dict[str, dict[str, int]] | str:
        """The offsets, or why they could not be read."""
        with self._lock:
            if time.monotonic() - self._at < OFFSETS_TTL_S:
                return self._value
            kafka = self.settings.kafka
            try:
                self._value = broker_end_offsets(kafka.bootstrap_servers, (kafka.topic, kafka.feed_events_topic))
            except BrokerOffsetsUnavailable as exc:
                self._value = str(exc)
            self._at = time.monotonic()
            return self._value


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json")


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if not EARLIEST <= t < LATEST:
        raise Problem(400, f"{t.isoformat()} is outside {EARLIEST.year}..{LATEST.year - 1}")
    return t


def _floor(t: dt.datetime, step_s: int) -> dt.datetime:
    return from_ms(int(t.timestamp() * 1000) // (step_s * 1000) * step_s * 1000)


def _ceil(t: dt.datetime, step_s: int) -> dt.datetime:
    floor = _floor(t, step_s)
    return floor if floor == t else floor + dt.timedelta(seconds=step_s)


def create_app(settings: Settings | None = None, feed: LiveFeed | None = None) -> FastAPI:
    """The app over `settings.lake.path` and `settings.kafka.live_bars_topic`.

    `feed`: the live-bars tail to use (tests pass one); by default one is started with the app.
    """
    settings = settings or Settings()
    cfg = settings.api
    rollups = MinuteRollups()
    warmer = Warmer(rollups, cfg.warm_days)
    lake = LakeAccess(settings.lake.path, on_snapshot=warmer.offer)
    feed = feed or LiveFeed(settings.kafka.bootstrap_servers, settings.kafka.live_bars_topic, client_id="api")
    broadcaster = stream.Broadcaster(feed, cfg.stream_queue)
    offsets = Offsets(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warmer.start()
        await asyncio.to_thread(lake.start)
        broadcaster.attach(asyncio.get_running_loop())
        if feed._thread is None:
            feed.start()
        try:
            yield
        finally:
            lake.stop()
            warmer.stop()
            feed.stop(timeout_s=0.2)  # a daemon thread: it closes its consumer when it sees the flag

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if cfg.key and not (x_api_key and hmac.compare_digest(x_api_key.encode(), cfg.key.encode())):
            raise Problem(401, "a valid X-API-Key header is required")

    app = FastAPI(
        title="crypto-lakehouse API",
        version="1",
        summary="Read-only: 1 s bars, candles, volatility and health from the lake; forming bars live.",
        lifespan=lifespan,
    )
    router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)  # type: ignore[arg-type]

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> Response:
        return _json({"detail": exc.detail}, exc.status)

    @app.exception_handler(LakeUnavailable)
    async def unavailable(_: Request, exc: LakeUnavailable) -> Response:
        return _json({"detail": str(exc)}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return _json({"detail": f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg")}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    def market(snap: Snapshot, exchange: str, symbol: str) -> None:
        if (exchange, symbol) not in snap.newest:
            raise Problem(404, f"the lake has no bars of {exchange}:{symbol}; GET /v1/symbols lists what it holds")

    def span(
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
        start, end = _utc(start), _utc(end)
        if end is None:
            end = snap.newest[(exchange, symbol)].end
            end = max(end, live_end) if live_end else end
            end = _ceil(end, step_s)
        if start is None:
            start = end - dt.timedelta(seconds=step_s * (limit or DEFAULT_CANDLES))
        if start >= end:
            raise Problem(400, f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
        rows = math.ceil((end - _floor(start, step_s)).total_seconds() / step_s)
        if limit is None and rows > cfg.max_rows:
            raise Problem(
                413,
                f"the range holds up to {rows:,} rows of {step_s} s; the cap is {cfg.max_rows:,} per request "
                "(API_MAX_ROWS): narrow start/end, use a coarser interval, or set limit",
            )
        fetch = min(limit or cfg.max_rows, cfg.max_rows)
        return start, end, fetch, limit is not None and rows > limit

    @router.get("/symbols", response_model=schemas.Symbols, summary="Exchanges and symbols, first and newest bar")
    def symbols() -> Response:
        snap = lake.snapshot()
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
        return _json({"markets": rows})

    @router.get(
        "/candles",
        response_model=schemas.Candles,
        summary="OHLCV candles at an interval, from the lake's 1 s bars (the candles() macro)",
        responses={
            200: {
                "content": {
                    "text/csv": {},
                    "application/vnd.apache.parquet": {},
                    "application/vnd.apache.arrow.stream": {},
                }
            }
        },
    )
    def candles(
        exchange: Exchange,
        symbol: Symbol,
        interval: Interval = "1m",
        start: When = None,
        end: When = None,
        limit: Annotated[int | None, Query(ge=1, le=cfg.max_rows, description="at most this many candles")] = None,
        include_provisional: Annotated[bool, Query(description="append forming candles from the live bars")] = False,
        format: Annotated[Literal["json", "csv", "parquet", "arrow"], Query(description="json, or a file")] = "json",
    ) -> Response:
        step_s = INTERVALS_S[interval]
        live = feed.store.bars(exchange, symbol) if include_provisional else []
        with lake.cursor() as (snap, cur):
            market(snap, exchange, symbol)
            live_end = from_ms(max(b["window_end"] for b in live)) if live else None
            first, last, fetch, truncated = span(snap, exchange, symbol, step_s, start, end, limit, live_end)
            if step_s == 60 and format == "json" and not include_provisional:
                objects = minute_json(cur, snap, exchange, symbol, first, last, fetch + 1)
                if objects is not None:
                    head = {"exchange": exchange, "symbol": symbol, "interval": interval, "start": first, "end": last,
                            "truncated": truncated or len(objects) > fetch}  # fmt: skip
                    body = dumps(head)[:-1] + b',"candles":[' + b",".join(objects[:fetch]) + b"]}"
                    return Response(body, media_type="application/json")
            rows = final_candles(candle_table(cur, snap, exchange, symbol, step_s, first, last, fetch + 1))
        truncated = truncated or len(rows) > fetch
        rows = rows[:fetch]
        if include_provisional and not truncated:
            newest = snap.newest[(exchange, symbol)].start
            rows = with_provisional(rows, live, newest, step_s, first, last)[:fetch]
        if format != "json":
            table = pa.Table.from_pylist([as_decimals(r) for r in rows], schema=CANDLE_SCHEMA)
            return _file(table, format, f"{exchange}-{symbol}-{interval}")
        return _json(
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

    def rollups_in(cur: Any, snap: Snapshot, symbol: str, first: dt.datetime, last: dt.datetime) -> list[Any] | None:
        """The symbol's partitions in [first, last) as 1-minute rollups; None when the range is not
        minute-aligned (the rollups would not give the macro's answer)."""
        if first.timestamp() % 60 or last.timestamp() % 60:
            return None
        days = (first.date().isoformat(), (last - dt.timedelta(microseconds=1)).date().isoformat())
        return [
            rollups.get(cur, files)
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
        cur: Any, snap: Snapshot, exchange: str, symbol: str, step_s: int, first: dt.datetime, last: dt.datetime,
        limit: int,
    ) -> pa.Table:  # fmt: skip
        """Candles from the 1-minute rollups when they give the same answer, else from the bars."""
        parts = rollups_in(cur, snap, symbol, first, last) if step_s % 60 == 0 else None
        if not parts:
            return queries.candles(cur, exchange, symbol, step_s, first, last, limit)  # also: an empty result, typed
        minutes = pa.concat_tables([p.table for p in parts])
        return roll_up(minutes.filter(in_range(minutes, exchange, first, last)), step_s).slice(0, limit)

    def minute_json(
        cur: Any, snap: Snapshot, exchange: str, symbol: str, first: dt.datetime, last: dt.datetime, limit: int
    ) -> list[bytes] | None:
        """1-minute candles as JSON objects straight from the rollups; None where they do not apply."""
        parts = rollups_in(cur, snap, symbol, first, last)
        if not parts:
            return None
        out: list[bytes] = []
        for part in parts:
            objects = part.json_objects()
            out += [objects[i] for i in pc.indices_nonzero(in_range(part.table, exchange, first, last)).to_pylist()]
            if len(out) >= limit:
                break
        return out[:limit]

    def bar(row: dict[str, Any], source: str) -> dict[str, Any]:
        out = {k: row[k] for k in schemas.Bar.model_fields if k in row}
        if source == "live":
            out["window_start"], out["window_end"] = from_ms(row["window_start"]), from_ms(row["window_end"])
        out["final"] = bool(row.get("final", True))
        out["source"] = source
        return out

    @router.get("/latest", response_model=schemas.Latest, summary="The newest final bar and the forming one")
    def latest(exchange: Exchange, symbol: Symbol) -> Response:
        live = feed.store.bars(exchange, symbol)
        with lake.cursor() as (snap, cur):
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
        return _json(
            {
                "exchange": exchange,
                "symbol": symbol,
                "final": final,
                "provisional": provisional,
                "live_stream": feed.status,
            }
        )

    @router.get(
        "/volatility", response_model=schemas.Volatility, summary="The job's volatility rows, or realized_volatility()"
    )
    def volatility(
        exchange: Exchange,
        symbol: Symbol,
        start: When = None,
        end: When = None,
        interval: Annotated[Interval | None, Query(description="buckets of the realized_volatility() macro")] = None,
        limit: Annotated[int | None, Query(ge=1, le=cfg.max_rows)] = None,
    ) -> Response:
        step_s = INTERVALS_S[interval] if interval else 1
        with lake.cursor() as (snap, cur):
            market(snap, exchange, symbol)
            first, last, fetch, truncated = span(snap, exchange, symbol, step_s, start, end, limit)
            if interval:
                table = queries.realized_volatility(cur, exchange, symbol, step_s, first, last, fetch + 1)
            else:
                table = queries.volatility(cur, exchange, symbol, snap.windows, first, last, fetch + 1)
        truncated = truncated or table.num_rows > fetch
        rows = table.slice(0, fetch).to_pylist()  # NaN (a first bar's return) becomes null in `dumps`
        return _json(
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

    @router.get(
        "/health",
        response_model=schemas.Health,
        summary="Freshness, the job, Kafka lag, feed events, rejects",
        responses={503: {"model": schemas.Health, "description": "stale, or a part is down"}},
    )
    def health_check() -> Response:
        now = dt.datetime.now(dt.UTC)
        lake_error = lake.error
        markets: list[health.MarketAge] = []
        job: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        job_offsets: dict[str, dict[str, int]] = {}
        snap_age = None
        try:
            with lake.cursor() as (snap, cur):
                snap_age = time.time() - snap.taken_at
                markets = health.ages({k: n.end for k, n in snap.newest.items()}, now)
                for query, batch_id, ts, rows_in, watermark, sources in queries.last_batches(cur):
                    job.append(
                        {
                            "query": query,
                            "batch_id": batch_id,
                            "timestamp": ts,
                            "age_s": (now - ts).total_seconds(),
                            "input_rows": rows_in,
                            "watermark": watermark,
                        }
                    )
                    if query == health.JOB_QUERY:
                        job_offsets = progress_offsets(sources or "[]")
                since = now - dt.timedelta(hours=1)
                events = [{"kind": k, "exchange": e, "count": n} for k, e, n in queries.feed_events_since(cur, since)]
                rejects = [{"reason": r, "count": n} for r, n in queries.rejects_by_reason(cur)]
        except LakeUnavailable as exc:
            lake_error = str(exc)
        broker = offsets.get()
        kafka_error = broker if isinstance(broker, str) else None
        lag = consumer_lag(job_offsets, broker) if isinstance(broker, dict) else []
        job_batch = next((j for j in job if j["query"] == health.JOB_QUERY), None)
        reasons = health.reasons(
            lake_error=lake_error,
            markets=markets,
            stale_after_s=cfg.stale_after_s,
            job_batch_age_s=job_batch["age_s"] if job_batch else None,
            kafka_error=kafka_error,
            live_error=None if feed.available else feed.status,
        )
        body = {
            "status": "unhealthy" if reasons else "ok",
            "reasons": reasons,
            "checked_at": now,
            "lake": {
                "ok": lake_error is None,
                "error": lake_error,
                "path": str(lake.path),
                "snapshot_age_s": snap_age,
                "rollups_cached": len(rollups),
                "rollups_warm": warmer.warm,
                "rollups_warmed_in_s": warmer.seconds,
            },
            "freshness": [
                {
                    "exchange": m.exchange,
                    "symbol": m.symbol,
                    "newest_bar_end": m.newest_end,
                    "age_s": m.age_s,
                    "stale": m.age_s > cfg.stale_after_s,
                }
                for m in markets
            ],
            "job": job,
            "kafka": {
                "ok": kafka_error is None,
                "error": kafka_error,
                "lag": lag,
                "total_lag": sum(x["lag"] for x in lag if x["lag"] is not None) if lag else None,
            },
            "feed_events_last_hour": events,
            "rejects_by_reason": rejects,
            "live_stream": {
                "ok": feed.available,
                "status": feed.status,
                "clients": broadcaster.counts.connected,
                "clients_dropped_slow": broadcaster.counts.dropped_slow,
                "sent": broadcaster.counts.sent,
            },
        }
        return _json(body, 503 if reasons else 200)

    @router.post("/sql", response_model=schemas.SqlResult, summary="One read-only SELECT (lake.sandbox)")
    def sql(body: schemas.SqlQuery) -> Response:
        max_rows = min(body.max_rows or cfg.sql_max_rows, cfg.sql_max_rows)
        with lake.cursor() as (_, cur):
            try:
                result = run_query(cur, body.query, max_rows=max_rows, timeout_s=cfg.request_timeout_s * 0.8)
            except QueryRefused as exc:
                raise Problem(400, str(exc)) from None
        table = result.table
        columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
        data = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = [list(r) for r in zip(*data, strict=True)] if data else []
        return _json({"columns": columns, "rows": rows, "row_count": len(rows), "truncated": result.truncated})

    app.include_router(router)

    @app.websocket("/v1/stream/bars")
    async def stream_bars(
        ws: WebSocket,
        symbols: str = "",
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        """Provisional updates, then the final bar, of each subscribed market's 1 s bars."""
        if cfg.key and not (x_api_key and hmac.compare_digest(x_api_key.encode(), cfg.key.encode())):
            await ws.close(1008, "a valid X-API-Key header is required")
            return
        await stream.serve(ws, broadcaster, symbols)

    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(TimeLimit, seconds=cfg.request_timeout_s)
    app.add_middleware(stream.RawSend)  # outermost: it sees the server's own send
    app.state.lake, app.state.feed, app.state.broadcaster, app.state.rollups = lake, feed, broadcaster, rollups
    app.state.warmer = warmer
    return app


MEDIA = {
    "csv": ("text/csv", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "arrow": ("application/vnd.apache.arrow.stream", "arrows"),
}


def _file(table: pa.Table, kind: str, name: str) -> Response:
    """The table as a CSV, Parquet or Arrow IPC stream download (decimals stay exact in all three)."""
    sink = io.BytesIO()
    if kind == "csv":
        pa_csv.write_csv(table, sink)
    elif kind == "parquet":
        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    media, ext = MEDIA[kind]
    return Response(
        sink.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    )
