"""Live bars on `crypto.bars.live`: one encoding of `core.schema.LIVE_BAR`, for every producer and consumer.

Decimals travel as strings at the lake's scale (exact), times as epoch ms. `decode` gives
Python values (Decimal, int, bool); `to_frame` gives a DataFrame with the lake's types, so a
live bar compares column by column with a row of the `ohlc` table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pandas as pd

from core.schema import LIVE_BAR, SCHEMA_VERSION, decimal_parts

_DECIMAL_SCALE = {c.name: dec[1] for c in LIVE_BAR if (dec := decimal_parts(c.type))}
_TIMESTAMPS = tuple(c.name for c in LIVE_BAR if c.type == "timestamp")  # epoch ms on the wire
FIELDS = tuple(c.name for c in LIVE_BAR)
_DEFAULTS = {c.name: c.default for c in LIVE_BAR if c.default is not None}  # `revision`: 0 if not given


def encode(bar: dict[str, Any]) -> bytes:
    """A bar (Decimal values, epoch-ms times) -> the JSON message. Every LIVE_BAR field is required
    but those with a default (`revision`)."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION}
    for name in FIELDS[1:]:
        value = bar[name] if name not in _DEFAULTS else bar.get(name, _DEFAULTS[name])
        if name in _DECIMAL_SCALE:
            value = format(value.quantize(Decimal(1).scaleb(-_DECIMAL_SCALE[name])), "f")
        out[name] = value
    return orjson.dumps(out)


def decode(value: bytes) -> dict[str, Any]:
    """The JSON message -> a dict with Decimal amounts and epoch-ms times; raises ValueError if it is not one."""
    record = orjson.loads(value)
    if not isinstance(record, dict) or record.get("v") != SCHEMA_VERSION:
        raise ValueError(f"not a version-{SCHEMA_VERSION} live bar: {value[:200]!r}")
    for name, default in _DEFAULTS.items():
        record.setdefault(name, default)
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise ValueError(f"live bar lacks {', '.join(missing)}: {value[:200]!r}")
    for name in _DECIMAL_SCALE:
        record[name] = Decimal(record[name])
    return record


def to_frame(bars: list[dict[str, Any]]) -> pd.DataFrame:
    """Decoded bars -> a DataFrame: Decimal amounts, UTC timestamps for the window bounds."""
    frame = pd.DataFrame(bars, columns=list(FIELDS))
    for name in _TIMESTAMPS:
        frame[name] = pd.to_datetime(frame[name], unit="ms", utc=True)
    return frame
