"""Fuzzed WebSocket frames into the live pipeline of every venue: none may crash it, each must be
a dead letter with a reason, and memory must stay bounded.

Frames are built from real ones (tests/data) by targeted breakage, so every one is invalid:
truncated JSON, wrong types, huge numbers, NaN and Infinity, deep nesting, 1 MB strings,
invalid UTF-8 (decoded with replacement, as `ingest.connection` does), and valid frames with
absurd fields. They go through `FeedPipeline.on_frame`, the code the connection calls.
"""

from __future__ import annotations

import json
import random
import resource
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from core.settings import load
from ingest.pipeline import FeedPipeline
from ingest.venues import SubscriptionRejected
from ingest.venues.binance import Binance
from ingest.venues.coinbase import Coinbase
from ingest.venues.okx import Okx
from tests.faults import FaultRow

SETTINGS = load(kafka_topic="t", kafka_dlq_topic="dlq", kafka_feed_events_topic="fe")

# One valid trade frame per venue, with the paths of its trade's fields.
TEMPLATES: dict[str, tuple[Callable[[], Any], dict[str, Any], list[tuple[str, ...]]]] = {
    "binance": (
        lambda: Binance("ws://x"),
        {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259,
         "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342, "m": True, "M": True}},
        [("data", k) for k in ("e", "s", "t", "p", "q", "T", "m")],
    ),
    "coinbase": (
        lambda: Coinbase("ws://x"),
        {"type": "match", "trade_id": 1568268, "side": "sell", "size": "450", "price": "0.791",
         "product_id": "SKL-USD", "sequence": 201390075, "time": "2021-04-17T16:43:37.121358Z"},
        [(k,) for k in ("trade_id", "side", "size", "price", "product_id", "time")],
    ),
    "okx": (
        lambda: Okx("ws://x"),
        {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{"instId": "BTC-USDT",
         "tradeId": "338476307", "px": "29270.1", "sz": "0.00035", "side": "sell", "ts": "1652459225499"}]},
        [("data", 0, k) for k in ("instId", "tradeId", "px", "sz", "side", "ts")],
    ),
}  # fmt: skip

ABSURD: list[Any] = [
    None, True, [], {}, "", " ", "abc", -1, 0, "-1", "0", "1e400", "NaN", "Infinity", 10**30, "9" * 40,
    1.5e308, "0.000000001", "61837.123456789", 2**64, -(2**63), "2100-01-01T00:00:00Z", "yesterday",
    "\u0000", "🚀", "1" * 1000,
]  # fmt: skip


class CountingSink:
    def __init__(self) -> None:
        self.by_topic: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.by_topic[topic] += 1
        if topic == SETTINGS.kafka.dlq_topic:
            self.reasons[json.loads(value)["reason"]] += 1

    @property
    def pending(self) -> int:
        return 0


def _set(frame: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        frame = frame[step]
    frame[path[-1]] = value


def _absurd_frame(rng: random.Random, template: dict[str, Any], paths: list[tuple[Any, ...]]) -> str:
    frame = json.loads(json.dumps(template))
    path = rng.choice(paths)
    value = rng.choice(ABSURD)
    _set(frame, path, value)
    return json.dumps(frame)


def _broken(rng: random.Random, template: dict[str, Any], paths: list[tuple[Any, ...]]) -> str:
    """One invalid frame of a randomly chosen kind."""
    text = json.dumps(template)
    kind = rng.randrange(9)
    if kind == 0:  # truncated JSON
        return text[: rng.randrange(1, len(text) - 1)]
    if kind == 1:  # NaN / Infinity where a number is
        return text.replace(str(template.get("trade_id", 1723161255342)), rng.choice(["NaN", "Infinity", "-Infinity"]))
    if kind == 2:  # deep nesting
        depth = rng.choice([100, 2000, 50_000])
        return "[" * depth + "]" * depth
    if kind == 3:  # 1 MB string in a field
        frame = json.loads(text)
        _set(frame, rng.choice(paths), "x" * 1_000_000)
        return json.dumps(frame)
    if kind == 4:  # invalid UTF-8, decoded with replacement as the connection does
        raw = text.encode()
        cut = rng.randrange(len(raw))
        return (raw[:cut] + bytes([0xFF, 0xFE, 0xC3]) + raw[cut:]).decode("utf-8", errors="replace")
    if kind == 5:  # not an object
        return json.dumps(rng.choice([[1, 2], "text", 42, None, [template]]))
    if kind == 6:  # huge numbers: a 400-digit trade id, as a number and as a string
        frame = json.loads(text)
        _set(frame, next(p for p in paths if p[-1] in ("t", "trade_id", "tradeId")), rng.choice(["9" * 400, 10**400]))
        return json.dumps(frame)
    if kind == 7:  # random bytes as text
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1")
    return _absurd_frame(rng, template, paths)  # a valid frame with one absurd field


def fuzzed(n: int, seed: int = 7) -> Iterator[tuple[str, str]]:
    """(exchange, frame text), `n` in all, spread over the venues."""
    rng = random.Random(seed)
    names = list(TEMPLATES)
    for i in range(n):
        name = names[i % len(names)]
        _make, template, paths = TEMPLATES[name]
        yield name, _broken(rng, template, paths)


def campaign(n: int = 100_000, seed: int = 7) -> tuple[FaultRow, Counter[str], Counter[str]]:
    """(the row, dead-letter reasons, what became of each frame). Every frame must end as a dead
    letter, or (a broken field that is still valid, e.g. symbol "abc" or id 0) as a trade or a
    duplicate of one: `lost` counts frames that did neither, `crashes` exceptions that escaped."""
    sink = CountingSink()
    pipelines = {
        name: FeedPipeline(make(), [], sink, SETTINGS, now_ms=lambda: 1_723_161_300_000)
        for name, (make, _t, _p) in TEMPLATES.items()
    }
    outcomes: Counter[str] = Counter()
    crashes = 0
    for exchange, text in fuzzed(n, seed):
        pipeline = pipelines[exchange]
        before = (pipeline.counters.dead_letters, pipeline.counters.trades, pipeline.counters.duplicates)
        try:
            pipeline.on_frame(text, 1_723_161_300_000)
        except SubscriptionRejected:
            pass  # dead-lettered first; live, the feed then ends
        except Exception:
            crashes += 1
        after = (pipeline.counters.dead_letters, pipeline.counters.trades, pipeline.counters.duplicates)
        changed = [
            name for name, b, a in zip(("dead letter", "trade", "duplicate"), before, after, strict=True) if a > b
        ]
        outcomes[changed[0] if changed else "nothing"] += 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = FaultRow(
        "fuzzed WebSocket frames -> ingestor", n, crashes == 0, lost=outcomes["nothing"], duplicated=0,
        detail=f"crashes {crashes}; dead letters {outcomes['dead letter']:,} ({len(sink.reasons)} reasons); "
        f"still-valid trades {outcomes['trade']}, their repeats {outcomes['duplicate']}; peak RSS {peak_mb:.0f} MB",
    )  # fmt: skip
    return row, sink.reasons, outcomes
