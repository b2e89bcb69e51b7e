"""The real sample tape made messy: neighbours swapped, trades repeated, invalid records inserted."""

from __future__ import annotations

import random
from typing import Any

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("nonpositive_price", {"price": "-1.00000000"}),
    ("price_precision", {"price": "61837.123456789"}),
    ("bad_quantity", {"quantity": "abc"}),
    ("missing_symbol", {"symbol": None}),
    ("absurd_timestamp", {"timestamp": 99}),
    ("unknown_type", {"type": "quote"}),
    ("unsupported_version", {"v": 99}),
]


def messy_tape(records: list[dict[str, Any]], seed: int = 7) -> tuple[list[dict[str, Any]], int]:
    """Swap neighbours, repeat some trades, and insert invalid records."""
    rng = random.Random(seed)
    out = list(records)
    for i in range(0, len(out) - 1, 7):  # out of order by one position, within the watermark
        out[i], out[i + 1] = out[i + 1], out[i]
    for i in sorted(rng.sample(range(len(out) - 20), 150), reverse=True):
        out.insert(i + rng.randint(1, 20), dict(out[i]))  # the same trade again, a little later
    for n, (_reason, change) in enumerate(INVALID):
        out.insert(500 + 37 * n, {**records[100 + n], **change})
    return out, len(INVALID)


def with_late_trades(records: list[dict[str, Any]], at: tuple[int, ...], lag_ms: int = 30_000) -> list[dict[str, Any]]:
    """`records` with, after each position in `at`, three trades stamped `lag_ms` before the
    record there (new ids; the last at a new price and the end of its second, so that it moves
    its bar's close): late by the watermark's measure, to be revised into their bars."""
    out = list(records)
    for n, i in enumerate(sorted(at, reverse=True)):
        base = out[i]
        t = int(base["timestamp"]) - lag_ms
        late = [
            {**base, "trade_id": 10**12 + 10 * n + k, "timestamp": t + k} for k in range(2)
        ] + [{**base, "trade_id": 10**12 + 10 * n + 2, "timestamp": t - t % 1000 + 999,
              "price": f"{float(base['price']) + 3.17:.2f}"}]  # fmt: skip
        out[i + 1 : i + 1] = late
    return out
