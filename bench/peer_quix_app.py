"""The Python peer: the same 1-second bars computed by a Quix Streams application.

Run by `bench/peer_quix.py` in its own virtualenv (`.venv-peer`: quixstreams pins a
pydantic-settings older than the project's), so it imports nothing from the project:

    .venv-peer/bin/python bench/peer_quix_app.py BOOTSTRAP TOPIC OUT.parquet STATE_DIR

Like the job: exact decimals (prices and quantities as integers of 1e-8), each
(exchange, symbol, trade_id) counted once, 1 s tumbling windows on the trade time with a 5 s
grace, open and close by (timestamp, trade_id). It prints one JSON line: records consumed,
bars, and the time from the first record to the last one processed.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from quixstreams import Application
from quixstreams.state import State

SCALE = 10**8  # the lake's DECIMAL(18,8)
GRACE_MS = 5000


def units(text: str) -> int:
    return int(Decimal(text) * SCALE)


def trade_time(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
    return int(value["timestamp"]) if isinstance(value, dict) and "timestamp" in value else int(timestamp)


def first_seen(value: dict[str, Any], state: State) -> bool:
    key = str(value["trade_id"])
    if state.get(key) is not None:
        return False
    state.set(key, 1)
    return True


def start(value: dict[str, Any]) -> dict[str, Any]:
    price, qty = units(value["price"]), units(value["quantity"])
    order = [value["timestamp"], value["trade_id"]]
    buy = 0 if value["is_buyer_maker"] else qty
    return {
        "exchange": value["exchange"], "symbol": value["symbol"], "open": price, "open_at": order,
        "high": price, "low": price, "close": price, "close_at": order, "volume": qty, "quote": str(price * qty),
        "count": 1, "buy": buy, "sell": qty - buy, "first_id": value["trade_id"], "last_id": value["trade_id"],
    }  # fmt: skip


def add(bar: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    new = start(value)
    order = new["open_at"]
    if order < bar["open_at"]:
        bar["open"], bar["open_at"], bar["first_id"] = new["open"], order, new["first_id"]
    if order > bar["close_at"]:
        bar["close"], bar["close_at"], bar["last_id"] = new["close"], order, new["last_id"]
    bar["high"], bar["low"] = max(bar["high"], new["high"]), min(bar["low"], new["low"])
    for field in ("volume", "count", "buy", "sell"):
        bar[field] += new[field]
    bar["quote"] = str(int(bar["quote"]) + int(new["quote"]))  # units of 1e-16 outgrow int64 (orjson state)
    return bar


def main() -> int:
    bootstrap, topic_name, out, state_dir = sys.argv[1:5]
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"peer-{topic_name}-{time.time_ns()}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=trade_time)
    sdf = app.dataframe(topic)
    seen = {"records": 0, "first": 0.0, "last": 0.0}

    def count(value: Any) -> None:
        now = time.perf_counter()
        seen["first"] = seen["first"] or now
        seen["last"] = now
        seen["records"] += 1

    sdf = sdf.update(count)
    sdf = sdf.filter(lambda v: v.get("type") == "trade")
    sdf = sdf.filter(first_seen, stateful=True)
    sdf = sdf.tumbling_window(duration_ms=1000, grace_ms=GRACE_MS).reduce(add, start).final()
    bars = app.run(timeout=5.0, collect=True)
    rows = [{**b["value"], "window_start": b["start"]} for b in bars]
    table = pa.table(
        {
            "exchange": [r["exchange"] for r in rows],
            "symbol": [r["symbol"] for r in rows],
            "window_start_ms": [r["window_start"] for r in rows],
            **{f: [r[f] for r in rows] for f in ("open", "high", "low", "close", "volume", "count")},
            "quote": [r["quote"] for r in rows],
            **{f: [r[f] for r in rows] for f in ("buy", "sell", "first_id", "last_id")},
        }
    )
    pq.write_table(table, out)
    print(json.dumps({"records": seen["records"], "bars": len(rows), "seconds": seen["last"] - seen["first"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
