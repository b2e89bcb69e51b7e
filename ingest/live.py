"""`python -m ingest live` and `record`: one venue's feed, from socket to Kafka and/or disk."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from core.settings import Settings
from ingest.connection import FeedConnection
from ingest.pipeline import Counters, FeedPipeline, Sink
from ingest.producer import Publisher
from ingest.recorder import Recorder
from ingest.venues import make_backfiller, make_venue

log = logging.getLogger(__name__)


class NullSink:
    """Where `record` sends what it would publish: counted, not kept."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent += 1

    @property
    def pending(self) -> int:
        return 0


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT end the run cleanly: the loop stops, the producer flushes."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_feed(
    exchange: str,
    symbols: list[str],
    settings: Settings,
    stop: threading.Event,
    *,
    url: str | None = None,
    publish: bool = True,
    record_dir: Path | None = None,
    duration_s: float | None = None,
) -> Counters:
    """Run until `stop` (or `duration_s`); flush and close everything on the way out."""
    venue = make_venue(exchange, settings)
    recorder = (
        Recorder(record_dir, exchange, rotate_bytes=settings.record.rotate_bytes, rotate_s=settings.record.rotate_s)
        if record_dir is not None
        else None
    )
    publisher = Publisher(settings) if publish else None
    sink: Sink = publisher if publisher is not None else NullSink()
    pipeline = FeedPipeline(
        venue, symbols, sink, settings, recorder=recorder, backfiller=make_backfiller(exchange, settings)
    )
    timer = threading.Timer(duration_s, stop.set) if duration_s else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        FeedConnection(venue, symbols, pipeline, settings, stop, url=url).run()
    finally:
        if timer is not None:
            timer.cancel()
        log.info("final status exchange=%s %s", exchange, pipeline.status_line())
        if recorder is not None:
            recorder.close()
        if publisher is not None:
            publisher.close()
    return pipeline.counters
