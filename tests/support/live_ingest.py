"""The live ingestor as the tests drive it: a fake exchange, the real `run_feed`, and what reached Kafka."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from ingest.live import run_feed
from ingest.pipeline import Counters
from tests.support.fake_exchange import FakeExchange, Plan
from tests.support.kafka_helpers import consume

FAST = {  # settings that make reconnects and status lines quick
    "ws_backoff_initial_s": 0.05,
    "ws_backoff_max_s": 0.2,
    "ws_silence_timeout_s": 2.0,
    "ingest_health_interval_s": 1.0,
    "ingest_status_interval_s": 1.0,
}


def serve(started: list[FakeExchange], protocol: str, frames: list[str], plans: list[Plan], **kw: Any) -> FakeExchange:
    fake = FakeExchange(protocol, frames, plans, **kw).start()
    started.append(fake)
    return fake


def ingest(
    fake: FakeExchange,
    settings: Settings,
    exchange: str,
    symbols: list[str],
    timeout: float = 60,
    until: Callable[[], bool] | None = None,
) -> Counters:
    """Run the real `run_feed` until the server has played every plan and frame (and `until()`
    holds, if given: e.g. `fake.caught_up.is_set`, for a client that may still be busy), then stop it."""
    stop = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["counters"] = run_feed(exchange, symbols, settings, stop, url=fake.ws_url)
        except BaseException as exc:  # surfaced below
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "error" not in result:
        if fake.connections >= len(fake.plans) and fake.cursor >= len(fake.frames) and (until is None or until()):
            break
        time.sleep(0.05)
    time.sleep(1.5)  # let the client take in the last frames and tick once more
    stop.set()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    assert fake.cursor >= len(fake.frames), f"server played {fake.cursor} of {len(fake.frames)} frames in {timeout}s"
    return result["counters"]  # type: ignore[no-any-return]


def published(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    records = consume(settings.kafka.bootstrap_servers, settings.kafka.topic)
    trades = [r.value for r in records if r.value["type"] == "trade"]
    beats = [r for r in records if r.value["type"] == "heartbeat"]
    assert all(r.key == f"{r.value['exchange']}:{r.value['symbol']}" for r in records if r.value["type"] == "trade")
    dlq = [r.value for r in consume(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic)]
    events = [r.value for r in consume(settings.kafka.bootstrap_servers, settings.kafka.feed_events_topic)]
    return trades, [b.value for b in beats], dlq + events


def ids(trades: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((t["symbol"], t["trade_id"]) for t in trades)


def ranges(ids: set[tuple[str, int]]) -> set[tuple[str, int, int]]:
    """Contiguous (symbol, first, last) runs of ids."""
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for symbol, i in ids:
        by_symbol[symbol].append(i)
    runs = set()
    for symbol, values in by_symbol.items():
        values.sort()
        start = prev = values[0]
        for v in values[1:]:
            if v != prev + 1:
                runs.add((symbol, start, prev))
                start = v
            prev = v
        runs.add((symbol, start, prev))
    return runs
