"""Checks shared by the exchange parsers: decimals, ids and times."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from core.schema import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, PRICE_PRECISION, PRICE_SCALE
from ingest.errors import BadMessage

_MAX_INTEGER_DIGITS = PRICE_PRECISION - PRICE_SCALE
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def positive_decimal(record: dict[str, Any], key: str, name: str) -> Decimal:
    """The exchange's decimal string as an exact Decimal that fits the lake's type."""
    raw = record.get(key)
    if raw is None:
        raise BadMessage(f"missing_{name}")
    if not isinstance(raw, str | int):
        raise BadMessage(f"bad_{name}", repr(raw))
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise BadMessage(f"bad_{name}", repr(raw)) from None
    if not value.is_finite() or value <= 0:
        raise BadMessage(f"nonpositive_{name}", repr(raw))
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > PRICE_SCALE:
        raise BadMessage(f"{name}_precision", f"{raw!r} has more than {PRICE_SCALE} decimals")
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise BadMessage(f"{name}_overflow", repr(raw))
    return value


# A venue's symbol: letters and digits, parts joined by "-" (BTCUSDT, BTC-USD, BTC-USDT).
_SYMBOL = re.compile(r"[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,3}")


def symbol_text(raw: Any) -> str:
    """The venue's symbol as sent, if it has a symbol's shape (not empty, no spaces, controls or emoji)."""
    if not isinstance(raw, str) or not raw:
        raise BadMessage("missing_symbol")
    if not _SYMBOL.fullmatch(raw):
        raise BadMessage("bad_symbol", repr(raw)[:60])
    return raw


def integer(record: dict[str, Any], key: str, name: str) -> int:
    raw = record.get(key)
    if raw is None:
        raise BadMessage(f"missing_{name}")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise BadMessage(f"bad_{name}", repr(raw))
    try:
        value = int(raw)
    except ValueError:
        raise BadMessage(f"bad_{name}", repr(raw)[:80]) from None
    if not _INT64_MIN <= value <= _INT64_MAX:  # the lake's and Kafka records' bigint
        raise BadMessage(f"bad_{name}", f"{repr(raw)[:40]}... does not fit 64 bits")
    return value


def timestamp_ms(value: int) -> int:
    if not MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
        raise BadMessage("absurd_timestamp", str(value))
    return value
