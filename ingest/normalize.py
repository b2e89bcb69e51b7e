"""Raw exchange frames to normalized trade records."""

from __future__ import annotations

import json
from typing import Any

from ingest import binance, coinbase
from ingest.errors import BadMessage
from lake.trade import Trade


def json_object(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadMessage("malformed_json", str(exc)) from None
    if not isinstance(frame, dict):
        raise BadMessage("malformed_json", "not an object")
    return frame


def binance_frame(text: str, ingest_ts: int | None) -> Trade | None:
    """A combined-stream frame: a Trade for `@trade`, None for other channels."""
    frame = json_object(text)
    stream = frame.get("stream")
    if not isinstance(stream, str) or not stream.endswith("@trade"):
        return None
    data = frame.get("data")
    if not isinstance(data, dict):
        raise BadMessage("missing_data")
    return binance.parse_trade(data, ingest_ts)


# Coinbase frames that carry no trade and need no action here.
COINBASE_NON_TRADE_TYPES = {
    "subscriptions",
    "heartbeat",
    "l2update",
    "snapshot",
    "ticker",
    "received",
    "open",
    "done",
    "change",
    "activate",
}
COINBASE_NON_TRADE_CHANNELS = {
    "subscriptions",
    "heartbeats",
    "l2_data",
    "ticker",
    "ticker_batch",
    "candles",
    "status",
    "level2",
}


def coinbase_frame(text: str, ingest_ts: int | None) -> list[Trade]:
    """Trades in one Coinbase frame, from either feed; [] for frames that carry none."""
    frame = json_object(text)
    if "channel" in frame:  # Advanced Trade
        channel = frame["channel"]
        if channel == "market_trades":
            return coinbase.parse_market_trades(frame, ingest_ts)
        if channel in COINBASE_NON_TRADE_CHANNELS:
            return []
        raise BadMessage("unknown_channel", repr(channel))
    kind = frame.get("type")
    if kind in ("match", "last_match"):
        return [coinbase.parse_match(frame, ingest_ts)]
    if kind in COINBASE_NON_TRADE_TYPES:
        return []
    if kind == "error":
        raise BadMessage("exchange_error", str(frame.get("message")))
    raise BadMessage("unknown_message_type", repr(kind))
