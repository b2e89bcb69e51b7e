"""Records the ingestor publishes beside trades: dead letters and feed events.

Their columns are `core.schema.DEAD_LETTER` and `core.schema.FEED_EVENT`; a test holds
each builder to its schema.
"""

from __future__ import annotations

import json
from typing import Any

from core.schema import (
    FEED_EVENT,
    FEED_EVENT_BACKFILL,
    FEED_EVENT_DISCONNECT,
    FEED_EVENT_GAP,
    FEED_EVENT_HEALTH,
    FEED_EVENT_SEQUENCE_GAP,
    SCHEMA_VERSION,
    column_names,
)

_FEED_EVENT_FIELDS = column_names(FEED_EVENT)


MAX_DETAIL_CHARS = 500
MAX_RAW_CHARS = 256 * 1024  # a dead letter must fit Kafka's default 1 MB message, whatever arrived


def dead_letter(source: str, reason: str, detail: str, raw: str, ingest_ts: int | None) -> dict[str, Any]:
    """A frame that could not become trades, with why: whole up to MAX_RAW_CHARS, cut beyond
    (the detail then says how long it was)."""
    detail = detail if len(detail) <= MAX_DETAIL_CHARS else detail[:MAX_DETAIL_CHARS] + "..."
    if len(raw) > MAX_RAW_CHARS:
        detail = f"{detail} (raw cut to {MAX_RAW_CHARS:,} of {len(raw):,} characters)".strip()
        raw = raw[:MAX_RAW_CHARS]
    return {
        "v": SCHEMA_VERSION,
        "source": source,
        "reason": reason,
        "detail": detail,
        "raw": raw,
        "ingest_ts": ingest_ts,
    }


def feed_event(kind: str, exchange: str, ingest_ts: int, **fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(_FEED_EVENT_FIELDS)
    if unknown:
        raise TypeError(f"not feed-event fields: {sorted(unknown)}")
    record: dict[str, Any] = dict.fromkeys(_FEED_EVENT_FIELDS)
    record.update(fields, v=SCHEMA_VERSION, kind=kind, exchange=exchange, ingest_ts=ingest_ts)
    return record


def gap(
    exchange: str, symbol: str, first: int, last: int, from_ts: int | None, to_ts: int | None, now: int
) -> dict[str, Any]:
    """Trade ids first..last never arrived; they fall between from_ts and to_ts."""
    return feed_event(
        FEED_EVENT_GAP,
        exchange,
        now,
        symbol=symbol,
        from_trade_id=first,
        to_trade_id=last,
        from_ts=from_ts,
        to_ts=to_ts,
        count=last - first + 1,
    )


def sequence_gap(exchange: str, first: int, last: int, now: int) -> dict[str, Any]:
    return feed_event(
        FEED_EVENT_SEQUENCE_GAP,
        exchange,
        now,
        from_trade_id=first,
        to_trade_id=last,
        count=last - first + 1,
        detail="feed sequence numbers missing; any channel's messages may be among them",
    )


def disconnect(
    exchange: str, symbol: str, last_id: int | None, from_ts: int, to_ts: int, reason: str, now: int
) -> dict[str, Any]:
    """No data for `symbol` from from_ts (last frame) to to_ts (resubscribed)."""
    return feed_event(
        FEED_EVENT_DISCONNECT,
        exchange,
        now,
        symbol=symbol,
        from_trade_id=last_id,
        from_ts=from_ts,
        to_ts=to_ts,
        detail=reason,
    )


def backfill(exchange: str, symbol: str, first: int, last: int, fetched: int, detail: str, now: int) -> dict[str, Any]:
    return feed_event(
        FEED_EVENT_BACKFILL,
        exchange,
        now,
        symbol=symbol,
        from_trade_id=first,
        to_trade_id=last,
        count=fetched,
        detail=detail,
    )


def health(
    exchange: str, lag_p50_ms: float | None, lag_p99_ms: float | None, msgs_per_s: float, reconnects: int, now: int
) -> dict[str, Any]:
    return feed_event(
        FEED_EVENT_HEALTH,
        exchange,
        now,
        lag_p50_ms=lag_p50_ms,
        lag_p99_ms=lag_p99_ms,
        msgs_per_s=msgs_per_s,
        reconnects=reconnects,
    )


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()
