"""Every venue the ingestor speaks, in one registry.

A venue is one module here with a `SPEC` (`ingest.venues.base.VenueSpec`): its subscribe and
confirm protocol, its decoder from a raw frame to trades / dead letters / control facts, and
its REST backfill. Live, record, replay and normalize all decode through `make_venue`; the
CLI's `--exchange` choices and the backfiller lookup read `REGISTRY`. A venue's settings group
(`<NAME>_WS_URL`, ...) is declared in its module and registered with the settings here. Adding a
venue: a new module and one entry below.
"""

from __future__ import annotations

from core.settings import Settings, register_venue
from ingest.backfill import Backfiller
from ingest.venues import binance, coinbase, okx
from ingest.venues.base import Decoded, SubscriptionRejected, Venue, VenueSpec

REGISTRY: dict[str, VenueSpec] = {spec.name: spec for spec in (binance.SPEC, coinbase.SPEC, okx.SPEC)}
for _spec in REGISTRY.values():
    register_venue(_spec.name, _spec.settings)

__all__ = ["REGISTRY", "Decoded", "SubscriptionRejected", "Venue", "VenueSpec", "make_backfiller", "make_venue"]


def spec(exchange: str) -> VenueSpec:
    try:
        return REGISTRY[exchange]
    except KeyError:
        raise ValueError(f"unknown exchange {exchange!r}; expected one of {', '.join(REGISTRY)}") from None


def make_venue(exchange: str, settings: Settings) -> Venue:
    """The venue for `exchange`, with its URL and symbol map from settings."""
    return spec(exchange).make(settings)


def make_backfiller(exchange: str, settings: Settings) -> Backfiller | None:
    """The venue's REST gap filler when `--backfill` is on and the venue can page by trade id."""
    return spec(exchange).backfiller(settings) if settings.ingest.backfill else None


def venue_named_in(text: str) -> str:
    """The registered venue whose name appears in `text` (a capture's header or URL)."""
    lowered = text.lower()
    for name in REGISTRY:
        if name in lowered:
            return name
    raise ValueError(f"no supported venue named in {text[:120]!r}")
