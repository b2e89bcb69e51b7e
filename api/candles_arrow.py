"""The Arrow schema of a candle file (`format=csv|parquet|arrow`): the lake's decimal types."""

from __future__ import annotations

import pyarrow as pa

from core.schema import PRICE_PRECISION, PRICE_SCALE, QTY_PRECISION, QTY_SCALE

_PRICE = pa.decimal128(PRICE_PRECISION, PRICE_SCALE)
_VOLUME = pa.decimal128(QTY_PRECISION + 10, QTY_SCALE)
_QUOTE = pa.decimal128(38, PRICE_SCALE + QTY_SCALE)

CANDLE_SCHEMA = pa.schema([
    ("time", pa.timestamp("us", tz="UTC")), ("open", _PRICE), ("high", _PRICE), ("low", _PRICE), ("close", _PRICE),
    ("volume", _VOLUME), ("quote_volume", _QUOTE), ("vwap", _PRICE), ("trade_count", pa.int64()),
    ("buy_volume", _VOLUME), ("sell_volume", _VOLUME), ("first_trade_id", pa.int64()), ("last_trade_id", pa.int64()),
    ("bars", pa.int64()), ("provisional", pa.bool_()),
])  # fmt: skip
