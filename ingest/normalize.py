"""Raw exchange frames to normalized trade records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ingest import binance
from ingest.errors import BadMessage
from lake.trade import Trade


def binance_frame(text: str, ingest_ts: int | None) -> Trade | None:
    """A combined-stream frame: a Trade for `@trade`, None for other channels."""
    try:
        frame = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadMessage("malformed_json", str(exc)) from None
    if not isinstance(frame, dict):
        raise BadMessage("malformed_json", "not an object")
    stream = frame.get("stream")
    if not isinstance(stream, str) or not stream.endswith("@trade"):
        return None
    data = frame.get("data")
    if not isinstance(data, dict):
        raise BadMessage("missing_data")
    return binance.parse_trade(data, ingest_ts)


def binance_capture(frames: Iterable[tuple[int, str]]) -> Iterator[dict[str, Any]]:
    for ingest_ts, text in frames:
        trade = binance_frame(text, ingest_ts)
        if trade is not None:
            yield trade.to_dict()
