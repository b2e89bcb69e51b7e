"""What `make live` reports each few seconds: trades/s in, the newest final and live bar ages.

Probes (Kafka, the lake) are kept apart from the formatting, which is pure.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from core.ages import format_age
from core.live_bars import decode
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    records_per_s: float | None
    final_bar_age_s: float | None
    live_bar_age_s: float | None


def age(seconds: float | None) -> str:
    return "-" if seconds is None else format_age(seconds)


def status_line(reading: Reading, states: dict[str, str]) -> str:
    rate = "-" if reading.records_per_s is None else f"{reading.records_per_s:,.0f}"
    parts = ", ".join(f"{name} {state}" for name, state in states.items())
    return (
        f"{time.strftime('%H:%M:%S')} | in {rate} rec/s | newest final bar {age(reading.final_bar_age_s)} | "
        f"newest live bar {age(reading.live_bar_age_s)} | {parts}"
    )


class Probe:
    """Reads the trades topic's end offsets, the lake's newest bar and the live topic's newest bar."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._last: tuple[float, int] | None = None
        self._live_trade_ts: int | None = None
        self._stop = threading.Event()
        self._offsets: KafkaConsumer | None = None
        threading.Thread(target=self._tail_live, name="live-bar-probe", daemon=True).start()

    def read(self) -> Reading:
        return Reading(self._records_per_s(), self._final_bar_age(), self._live_age())

    def close(self) -> None:
        self._stop.set()
        if self._offsets is not None:
            self._offsets.close()

    def _records_per_s(self) -> float | None:
        try:
            if self._offsets is None:
                self._offsets = KafkaConsumer(
                    bootstrap_servers=self.settings.kafka.bootstrap_servers.split(","), request_timeout_ms=5000
                )
            topic = self.settings.kafka.topic
            tps = [TopicPartition(topic, p) for p in self._offsets.partitions_for_topic(topic) or ()]
            total = sum(self._offsets.end_offsets(tps).values()) if tps else 0
        except KafkaError:
            return None
        now = time.monotonic()
        last, self._last = self._last, (now, total)
        return None if last is None else (total - last[1]) / max(now - last[0], 1e-9)

    def _final_bar_age(self) -> float | None:
        import lake  # DuckDB only here

        try:
            con = lake.connect(self.settings.lake.path)
            row = con.sql("SELECT epoch_ms(max(window_end)) FROM latest_bars").fetchall()
            con.close()
        except Exception as exc:  # a lake being written may be unreadable for a moment
            log.debug("lake probe failed: %s", exc)
            return None
        newest = row[0][0] if row else None
        return None if newest is None else time.time() - newest / 1000

    def _live_age(self) -> float | None:
        ts = self._live_trade_ts
        return None if ts is None else time.time() - ts / 1000

    def _tail_live(self) -> None:
        while not self._stop.is_set():
            try:
                consumer = KafkaConsumer(
                    self.settings.kafka.live_bars_topic,
                    bootstrap_servers=self.settings.kafka.bootstrap_servers.split(","),
                    auto_offset_reset="latest", enable_auto_commit=False, consumer_timeout_ms=1000,
                )  # fmt: skip
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=500).values():
                        for record in records:
                            ts = decode(record.value)["last_trade_ts"]
                            self._live_trade_ts = max(ts, self._live_trade_ts or ts)
                consumer.close()
            except (KafkaError, ValueError) as exc:
                log.debug("live-bar probe: %s", exc)
                self._stop.wait(2.0)
