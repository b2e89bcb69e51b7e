"""One router per resource of the API; `create_app` includes `ROUTERS` under /v1."""

from api.routes import candles, health, latest, sql, stream, symbols, trades, volatility

ROUTERS = [symbols.router, candles.router, trades.router, latest.router, volatility.router, health.router, sql.router]
WEBSOCKET_ROUTERS = [stream.router]  # the key is checked inside (a WebSocket has no 401)
