"""JSON for the API: decimals as exact strings, times as ISO 8601 UTC (`Z`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def decimal_text(value: Decimal) -> str:
    """The decimal's digits at its own scale ('64000.12000000'): never rounded, never a float."""
    return format(value, "f")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value) if value.is_finite() else None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)  # intervals, UUIDs and other DuckDB values: their text


def dumps(obj: Any) -> bytes:
    """JSON bytes; Decimal -> string, datetime -> ISO 8601 with Z, NaN/inf -> null."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
