"""Replay a tape of normalized records into Kafka at a speed multiplier."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from tqdm import tqdm

from core.schema import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, RECORD_TRADE
from core.trade import heartbeat
from ingest.producer import Publisher

log = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    trades: int = 0
    heartbeats: int = 0
    last_timestamp: dict[str, int] = field(default_factory=dict)  # per exchange


def pacing_time(record: dict[str, Any]) -> int:
    """Arrival time in ms: receipt time when the tape has it, else trade time."""
    value = record.get("ingest_ts") or record.get("timestamp")
    return value if isinstance(value, int) else 0


def replay(
    records: Iterable[dict[str, Any]],
    publisher: Publisher,
    topic: str,
    *,
    speed: float = 0.0,
    closing_heartbeat_after_ms: int | None = None,
    total: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
    progress: bool = True,
) -> ReplayStats:
    """Publish each record keyed `exchange:symbol`, spaced as they arrived / speed.

    speed 0 publishes as fast as the producer takes them; `progress` shows a bar. With
    `closing_heartbeat_after_ms`, each exchange gets a final heartbeat that far
    past its last trade, so the job's watermark passes the tape's last bars.
    """
    if speed < 0:
        raise ValueError("speed must be >= 0")
    stats = ReplayStats()
    if speed > 0:
        publisher.warm_up(topic)
    start_wall: float | None = None
    start_tape = 0
    shown = tqdm(records, total=total, unit="rec", desc=f"replay -> {topic}", mininterval=1.0, disable=not progress)
    for record in shown:
        if stop is not None and stop.is_set():
            log.info("replay stopped early after %d trades", stats.trades)
            break
        if speed > 0:
            arrival = pacing_time(record)
            if start_wall is None:
                start_wall, start_tape = clock(), arrival
            delay = start_wall + (arrival - start_tape) / 1000.0 / speed - clock()
            if delay > 0 and stop is not None:
                stop.wait(delay)  # a SIGTERM ends the wait at once
            elif delay > 0:
                sleep(delay)
        exchange = str(record.get("exchange"))
        key = f"{exchange}:{record.get('symbol')}".encode()
        publisher.send(topic, key, orjson.dumps(record))
        if record.get("type", RECORD_TRADE) == RECORD_TRADE:
            stats.trades += 1
            ts = record.get("timestamp")
            # Only plausible times move the closing heartbeat; the job rejects the rest.
            if isinstance(ts, int) and MIN_TIMESTAMP_MS <= ts <= MAX_TIMESTAMP_MS:
                stats.last_timestamp[exchange] = max(ts, stats.last_timestamp.get(exchange, ts))
    if closing_heartbeat_after_ms is not None:
        for exchange, last in stats.last_timestamp.items():
            beat = heartbeat(exchange, last + closing_heartbeat_after_ms)
            publisher.send(topic, f"{exchange}:heartbeat".encode(), orjson.dumps(beat))
            stats.heartbeats += 1
    publisher.flush()
    log.info("replayed topic=%s trades=%d heartbeats=%d", topic, stats.trades, stats.heartbeats)
    return stats
