"""The wire-trade acceptance rules in plain Python: the same verdicts as the job's `jobs/trades.parse`.

The Spark job decides in SQL; the live-bar consumer (`jobs/forming_bars_service.py`) decides here. Both
read their limits from `core.schema`, and `tests/test_wire_rules.py` runs one table of records
through both and requires the same reason for each, so the two cannot drift apart.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from core.schema import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    PRICE_PRECISION,
    PRICE_SCALE,
    QTY_PRECISION,
    QTY_SCALE,
    RECORD_HEARTBEAT,
    RECORD_TRADE,
    SCHEMA_VERSION,
)

# The job parses a decimal wide first (decimal(38,18)), then narrows it to the lake's type.
_WIDE_PRECISION, _WIDE_SCALE = 38, 18
_CONTEXT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record the job accepts: a trade (all fields typed) or a heartbeat (exchange, timestamp)."""

    type: str
    exchange: str
    timestamp: int
    symbol: str | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    trade_id: int | None = None
    is_buyer_maker: bool | None = None


def _fits(value: Decimal, precision: int, scale: int) -> Decimal | None:
    """`value` cast to decimal(precision, scale) as Spark's try_cast does: rounded half up, None on overflow."""
    if value.adjusted() >= precision - scale:  # too many integer digits (and 1e400 would not quantize)
        return None
    try:
        rounded = value.quantize(Decimal(1).scaleb(-scale), context=_CONTEXT)
    except decimal.InvalidOperation:
        return None
    return rounded if rounded.adjusted() < precision - scale else None


def _spark_text(value: Any) -> str | None:
    """A JSON value read into a string field as Spark's from_json reads it: numbers, booleans and
    nested values as their JSON text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def _decimal(record: dict[str, Any], name: str, precision: int, scale: int) -> tuple[Decimal | None, str | None]:
    text = _spark_text(record.get(name))
    if text is None:
        return None, f"missing_{name}"
    try:
        value: Decimal | None = Decimal(text.strip())
    except decimal.InvalidOperation:
        value = None
    wide = _fits(value, _WIDE_PRECISION, _WIDE_SCALE) if value is not None and value.is_finite() else None
    if wide is None:
        return None, f"bad_{name}"
    if wide <= 0:
        return None, f"nonpositive_{name}"
    narrow = _fits(wide, precision, scale)
    if narrow is None:
        return None, f"{name}_overflow"
    if narrow != wide:
        return None, f"{name}_precision"
    return narrow, None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    text = _spark_text(value)
    return text if text is not None and text.strip(" ") else None  # Spark's trim: spaces only


def _timestamp_reason(ts: int | None) -> str | None:
    if ts is None:
        return "missing_timestamp"
    if ts < MIN_TIMESTAMP_MS or ts > MAX_TIMESTAMP_MS:
        return "absurd_timestamp"
    return None


def judge(record: Any) -> Accepted | str:
    """A decoded record -> `Accepted`, or the reason the job rejects it (its `rejects.reason`)."""
    if not isinstance(record, dict):
        return "malformed_json"
    kind = _spark_text(record.get("type"))
    if kind is None:
        return "missing_type"
    if _int(record.get("v")) != SCHEMA_VERSION:
        return "unsupported_version"
    exchange, ts = _text(record.get("exchange")), _int(record.get("timestamp"))
    if kind == RECORD_HEARTBEAT:
        if exchange is None:
            return "missing_exchange"
        return _timestamp_reason(ts) or Accepted(RECORD_HEARTBEAT, exchange, ts)  # type: ignore[arg-type]
    if kind != RECORD_TRADE:
        return "unknown_type"
    symbol, trade_id, maker = _text(record.get("symbol")), _int(record.get("trade_id")), record.get("is_buyer_maker")
    if exchange is None:
        return "missing_exchange"
    if symbol is None:
        return "missing_symbol"
    if reason := _timestamp_reason(ts):
        return reason
    if trade_id is None:
        return "missing_trade_id"
    if not isinstance(maker, bool):
        return "missing_is_buyer_maker"
    price, reason = _decimal(record, "price", PRICE_PRECISION, PRICE_SCALE)
    if reason:
        return reason
    quantity, reason = _decimal(record, "quantity", QTY_PRECISION, QTY_SCALE)
    if reason:
        return reason
    return Accepted(RECORD_TRADE, exchange, ts, symbol, price, quantity, trade_id, maker)  # type: ignore[arg-type]


def judge_value(value: bytes | None) -> Accepted | str:
    """A Kafka message value -> `Accepted` or the job's reject reason."""
    if value is None:
        return "empty_value"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "malformed_json"
    return judge(record)
