"""Fetching a detected trade-id gap over a venue's public REST API (`--backfill`).

Each venue's REST client lives with the venue (`ingest.venues.<name>`); this holds what they share.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from core.trade import Trade
from ingest.tracking import Gap

PAGE = 1000


class BackfillFailed(RuntimeError):
    pass


class Backfiller(Protocol):
    def fetch(self, exchange_symbol: str, gap: Gap) -> list[Trade]: ...


def get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "crypto-lakehouse-ingest"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise BackfillFailed(f"GET {url}: {exc}") from exc


class RestClient:
    def __init__(
        self,
        base_url: str,
        symbol_map: dict[str, str] | None = None,
        timeout: float = 10.0,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.symbol_map = symbol_map or {}
        self.timeout = timeout
        self.now_ms = now_ms
