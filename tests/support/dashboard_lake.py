"""A small lake with every table the dashboard reads: bars, volatility, rejects, progress."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from core.schema import REJECTS, VOLATILITY
from tests.support.lake_builder import SinkLake, ohlc_rows

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
SECONDS = 3 * 3600  # three hours of 1-second bars
SYMBOLS = {"AAAUSDT": 100.0, "BBBUSDT": 50.0, "CCCUSDT": 20.0}


def volatility_rows(bars: list[dict[str, object]]) -> list[dict[str, object]]:
    rows = []
    previous = None
    for bar in bars:
        close = float(bar["close"])  # type: ignore[arg-type]
        r: float | None = None if previous is None else math.log(close / previous)
        previous = close
        rows.append({
            "exchange": bar["exchange"], "symbol": bar["symbol"], "window_start": bar["window_start"],
            "close": bar["close"], "log_return": r,
            "volatility_60s": 0.001, "realized_vol_60s": 0.002, "returns_60s": 59,
            "volatility_300s": 0.0012, "realized_vol_300s": 0.004, "returns_300s": 299, "date": bar["date"],
        })  # fmt: skip
    return rows


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def build(
    lake: Path,
    symbols: dict[str, float] = SYMBOLS,
    batches: int = 6,
    start_at: dt.datetime = START,
    written_after: dt.timedelta = dt.timedelta(seconds=20),
) -> Path:
    """Bars in `batches` micro-batches per symbol, their volatility, two rejects and progress records.

    Each batch is written `written_after` after its bars end, as a live job does (~20 s), or long
    after, as when a tape of old trades is replayed.
    """
    ohlc, vol = SinkLake(lake), SinkLake(lake, "volatility", VOLATILITY)
    step = SECONDS // batches
    for b in range(batches):
        start = start_at + dt.timedelta(seconds=b * step)
        bars = [row for symbol, price in symbols.items() for row in ohlc_rows(symbol, start, step, price + b)]
        ohlc.write_batch(bars)
        vol.write_batch(volatility_rows(bars))
    rejects = SinkLake(lake, "rejects", REJECTS)
    rejects.write_batch([
        {"reason": reason, "raw": raw, "kafka_key": None, "kafka_topic": "crypto.trades", "kafka_partition": 0,
         "kafka_offset": n, "kafka_timestamp": start_at, "date": start_at.date()}
        for n, (reason, raw) in enumerate([("malformed_json", "{not json"), ("nonpositive_price", '{"price":"-1"}')])
    ])  # fmt: skip
    folder = lake / "_progress" / f"date={start_at.date()}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ohlc.ndjson").open("w") as out:
        for b in range(batches):
            watermark = start_at + dt.timedelta(seconds=(b + 1) * step)  # the batch wrote bars up to here
            out.write(json.dumps({
                "query": "ohlc", "batch_id": b, "timestamp": _iso(watermark + written_after),
                "input_rows": 1000, "input_rows_per_s": 200.0, "processed_rows_per_s": 900.0,
                "batch_duration_ms": 1100, "watermark": _iso(watermark),
                "state_rows": 40, "state_memory_bytes": 4096, "rows_dropped_by_watermark": 2 if b == 3 else 0,
                "duplicates_dropped": 0,
                "sources": [{"description": "kafka", "end_offset": json.dumps({"crypto.trades": {"0": 1000 * (b + 1)}}),
                             "input_rows": 1000}],
            }) + "\n")  # fmt: skip
    return lake
