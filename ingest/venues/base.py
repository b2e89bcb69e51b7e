"""What every venue provides, and what its decoder returns.

A venue turns one received frame into a `Decoded`: the trades it carries and the
protocol facts the connection and the gap tracker need (subscription confirmed,
exchange time, feed sequence number, the venue's last trade id). The live path
(`ingest.pipeline`) and the replay path (`ingest.frames`) call the same `decode`,
so a recording replays exactly as it was received. Transport, retries and
publishing live elsewhere (`ingest.connection`, `ingest.pipeline`).

Gap rules are the same for every venue so far: each instrument's trade ids are
consecutive integers (`ingest.tracking`). A venue adds to them through `Decoded`:
a connection-wide `sequence` (Advanced Trade), the venue's `last_trade_ids`
(the Exchange feed's heartbeats), or the span of ids an aggregated trade stands for
(`first_ids`, OKX).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from core.settings import VenueSettings
from core.trade import Trade
from ingest.errors import BadMessage

if TYPE_CHECKING:
    from core.settings import Settings
    from ingest.backfill import Backfiller


class SubscriptionRejected(BadMessage):
    """The venue refused our subscription (unknown symbol, bad request): retrying cannot help.

    A dead letter like any bad frame (reason `subscription_rejected`); live, it also ends the feed.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("subscription_rejected", detail)


@dataclass
class Decoded:
    trades: list[Trade] = field(default_factory=list)
    exchange_ts: int | None = None  # exchange time the frame carries, epoch ms
    sequence: int | None = None  # the connection's message sequence, where the venue has one
    last_trade_ids: dict[str, int] = field(default_factory=dict)  # symbol -> venue's last trade id
    subscribed: bool = False  # this frame confirms our subscription
    # (symbol, trade id) -> the first id an aggregated trade stands for (OKX's `count`): the ids
    # first..trade id are all received, not a gap.
    first_ids: dict[tuple[str, int], int] = field(default_factory=dict)


class Venue(Protocol):
    exchange: str
    keepalive: str | None  # text to send when the feed has been quiet a while (OKX: "ping"), or None

    def url(self, symbols: list[str]) -> str: ...

    def canonical(self, symbol: str) -> str: ...

    def subscribe_messages(self, symbols: list[str]) -> list[str]: ...

    def decode(self, text: str, ingest_ts: int | None) -> Decoded: ...


@dataclass(frozen=True)
class VenueSpec:
    """One registry entry (`ingest.venues.REGISTRY`): how to build the venue and its backfiller."""

    name: str  # the `exchange` column's value, and `--exchange`
    doc: str  # one line for `--help`
    make: Callable[[Settings], Venue]
    backfiller: Callable[[Settings], Backfiller | None]
    settings: type[VenueSettings] = VenueSettings  # its group: `<NAME>_<FIELD>`, `settings.venue(name)`


def json_object(text: str) -> dict[str, Any]:
    """The frame as a JSON object (orjson: also refuses NaN, Infinity and integers beyond 64 bits)."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("malformed_json", str(exc)) from None
    if not isinstance(frame, dict):
        raise BadMessage("malformed_json", "not an object")
    return frame
