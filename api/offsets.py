"""The broker's end offsets of the job's topics, for `GET /v1/health`'s lag, cached a few seconds."""

from __future__ import annotations

import math
import threading
import time

from core.broker_offsets import BrokerOffsetsUnavailable, end_offsets
from core.settings import Settings

OFFSETS_TTL_S = 5.0


class Offsets:
    """The end offsets of the trades and feed-events topics, read at most every OFFSETS_TTL_S."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._at = -math.inf
        self._value: dict[str, dict[str, int]] | str = {}

    def get(self) -> dict[str, dict[str, int]] | str:
        """The offsets, or why they could not be read."""
        with self._lock:
            if time.monotonic() - self._at < OFFSETS_TTL_S:
                return self._value
            kafka = self.settings.kafka
            try:
                self._value = end_offsets(kafka.bootstrap_servers, (kafka.topic, kafka.feed_events_topic))
            except BrokerOffsetsUnavailable as exc:
                self._value = str(exc)
            self._at = time.monotonic()
            return self._value
