"""Revised bars on `crypto.bars.live`: once the job has merged a revision into lake/ohlc, it
publishes each revised bar as the lake now holds it, final, with its `revision` (>= 1), keyed
`exchange:symbol` like the forming bars. The API's WebSocket pushes it and the dashboard redraws
that bar (`core.live_tail.newer`: a higher revision supersedes a final bar).

Best effort, after the commit: a publish that fails is logged and does not fail the batch (the
lake holds the revision, and every reader of the lake sees it). A batch re-run after a crash
finds its commits done and publishes nothing again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka.errors import KafkaError

from core.live_bars import encode
from core.settings import Settings
from ingest.producer import DeliveryFailed, Publisher

log = logging.getLogger(__name__)


class RevisionFeed:
    """Publishes revised bars on the live-bars topic; the producer is made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.kafka.live_bars_topic
        self._publisher: Publisher | None = None
        self.published = 0

    def publish(self, bars: list[dict[str, Any]]) -> int:
        """`bars`: `core.schema.LIVE_BAR` fields but `v` and `emitted_at`; returns how many went out."""
        if not bars:
            return 0
        try:
            if self._publisher is None:
                self._publisher = Publisher(
                    self.settings, linger_ms=5, client_id="crypto-lakehouse-revisions", max_block_ms=2000
                )
            now = int(time.time() * 1000)
            for bar in bars:
                key = f"{bar['exchange']}:{bar['symbol']}".encode()
                self._publisher.send(self.topic, key, encode({**bar, "emitted_at": now}))
            self._publisher.flush()
        except (KafkaError, DeliveryFailed, OSError) as exc:
            log.warning("%d revised bars not published on %s: %s (the lake holds them)", len(bars), self.topic, exc)
            return 0
        self.published += len(bars)
        return len(bars)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
