"""The read-only HTTP API over the lake and the live bars: `python -m api` (`make api`).

    GET  /v1/symbols    GET /v1/candles    GET /v1/latest    GET /v1/volatility
    GET  /v1/health     POST /v1/sql       WS  /v1/stream/bars

It reads the lake only through `lake.connect(read_only=True)` (`api.lake_access`) and the
forming bars only from `crypto.bars.live` (`core.live_tail`). Decimal amounts travel as JSON
strings. OpenAPI docs at /docs.
"""
