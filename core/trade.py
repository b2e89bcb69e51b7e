"""The normalized trade record, as the ingestor builds and publishes it.

Its fields are `core.schema.WIRE_TRADE`; a test holds the two together.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.schema import RECORD_HEARTBEAT, RECORD_TRADE, SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Trade:
    exchange: str
    symbol: str
    price: Decimal
    quantity: Decimal
    timestamp: int  # exchange trade time, epoch ms
    trade_id: int
    is_buyer_maker: bool
    ingest_ts: int | None = None  # receipt time, epoch ms

    @property
    def key(self) -> bytes:
        """Kafka key: one instrument stays in one partition, in order."""
        return f"{self.exchange}:{self.symbol}".encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": RECORD_TRADE,
            "v": SCHEMA_VERSION,
            "exchange": self.exchange,
            "symbol": self.symbol,
            # Decimal strings, never floats: no digit is invented or lost.
            "price": _plain(self.price),
            "quantity": _plain(self.quantity),
            "timestamp": self.timestamp,
            "trade_id": self.trade_id,
            "is_buyer_maker": self.is_buyer_maker,
            "ingest_ts": self.ingest_ts,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trade:
        if record.get("type", RECORD_TRADE) != RECORD_TRADE:
            raise ValueError(f"not a trade record: type={record.get('type')!r}")
        return cls(
            exchange=str(record["exchange"]),
            symbol=str(record["symbol"]),
            price=Decimal(str(record["price"])),
            quantity=Decimal(str(record["quantity"])),
            timestamp=int(record["timestamp"]),
            trade_id=int(record["trade_id"]),
            is_buyer_maker=bool(record["is_buyer_maker"]),
            ingest_ts=None if record.get("ingest_ts") is None else int(record["ingest_ts"]),
        )

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def mapped(trade: Trade, symbol_map: dict[str, str]) -> Trade:
    """The trade under its configured canonical symbol (`INGEST_SYMBOL_MAP`), if it has one."""
    symbol = symbol_map.get(trade.symbol)
    return trade if symbol is None else dataclasses.replace(trade, symbol=symbol)


def heartbeat(exchange: str, timestamp: int, ingest_ts: int | None = None) -> dict[str, Any]:
    """A record that only carries exchange time, so the job's watermark can move."""
    return {
        "type": RECORD_HEARTBEAT,
        "v": SCHEMA_VERSION,
        "exchange": exchange,
        "timestamp": timestamp,
        "ingest_ts": ingest_ts,
    }


def _plain(value: Decimal) -> str:
    """Decimal text without exponent: Decimal('1E-8') -> '0.00000001'."""
    return format(value, "f")
