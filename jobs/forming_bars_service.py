"""Kafka trades -> the forming 1-second bar of every (exchange, symbol) on `crypto.bars.live`.

    python -m jobs.forming_bars_service [--bootstrap-servers 127.0.0.1:9092] [--topic crypto.trades]
                             [--live-topic crypto.bars.live] [--from-beginning] [--duration S]

A small consumer beside the Spark job (which writes the final bars to the lake): each poll's
trades update their windows through `jobs.forming_bars`, and every window that changed is
published, keyed `exchange:symbol`, at most every LIVE_BARS_EMIT_INTERVAL_MS; a window the
watermark has passed is published once more with final=true. On start it reads back
LIVE_BARS_REWIND_S of the topic (by Kafka time) and leaves out windows that began before
that point, whose earlier trades it did not read.

Spark reads every partition up to the same point in each batch; a Kafka consumer may return
one partition far ahead of another while it catches up. So the watermark's event time is
capped at the newest event of each partition that still has unread records: once caught up,
it is Spark's (the newest event time of all, minus the delay). Invalid records are counted and skipped
(the job's rejects table records them); an update the broker cannot take within a second is
dropped and counted (a newer update of the same window supersedes it), never waited for; a
final update is tried again (nothing supersedes it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from pydantic import ValidationError

from core.live_bars import encode
from core.schema import BAR_MS
from core.settings import Settings, interval_ms, load
from core.wire import Accepted, judge_value
from ingest.live import stop_on_signals
from ingest.producer import Publisher
from jobs.forming_bars import FormingBars
from lake import logs

# A provisional update that finds the producer's buffer full is dropped (a newer one follows);
# a final one is tried again, each try waiting up to max_block_ms: nothing supersedes it.
FINAL_SEND_ATTEMPTS = 30

log = logging.getLogger("jobs.forming_bars_service")


class TopicMissing(RuntimeError):
    pass


@dataclass
class Published:
    updates: int = 0
    dropped: int = 0
    invalid: int = 0


def _require_topic(consumer: KafkaConsumer, topic: str, settings: Settings) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise TopicMissing(
            f"topic {topic} does not exist on {settings.kafka.bootstrap_servers} (create it with `make kafka-up`)"
        )
    return set(partitions)


def _consumer(settings: Settings, from_beginning: bool) -> tuple[KafkaConsumer, int | None]:
    """A consumer of every partition of the trades topic, positioned; and the first window to emit."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
        client_id="crypto-lakehouse-live-bars",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,  # latency over batching: the default waits up to 500 ms for data
        max_poll_records=5000,
    )
    try:
        partitions = _require_topic(consumer, settings.kafka.topic, settings)
        _require_topic(consumer, settings.kafka.live_bars_topic, settings)
    except TopicMissing:
        consumer.close()
        raise
    tps = [TopicPartition(settings.kafka.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
        return consumer, None
    since_ms = int(time.time() * 1000 - settings.live_bars.rewind_s * 1000)
    offsets = consumer.offsets_for_times({tp: since_ms for tp in tps})
    for tp in tps:
        found = offsets.get(tp)
        if found is None:
            consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, found.offset)
    # A second of margin for a venue clock ahead of ours; then the next whole second.
    first = since_ms + 1000
    return consumer, first - first % BAR_MS + BAR_MS


def run(settings: Settings, stop: threading.Event, *, from_beginning: bool = False) -> Published:
    consumer, start_ms = _consumer(settings, from_beginning)
    forming = FormingBars(interval_ms(settings.stream.watermark), start_ms=start_ms)
    published = Published()
    publisher = Publisher(settings, linger_ms=5, client_id="crypto-lakehouse-live-bars", max_block_ms=1000)
    topic = settings.kafka.live_bars_topic
    emit_every = settings.live_bars.emit_interval_ms / 1000
    last_emit = last_status = time.monotonic()
    status_in = 0
    newest: dict[TopicPartition, int] = {}  # per partition: the newest accepted event time read
    log.info(
        "reading %s from %s, publishing %s; watermark %s",
        settings.kafka.topic,
        "the beginning" if from_beginning else f"{settings.live_bars.rewind_s:.0f} s back",
        topic,
        settings.stream.watermark,
    )
    try:
        while not stop.is_set():
            wait = max(0.0, last_emit + emit_every - time.monotonic())
            batches = consumer.poll(timeout_ms=max(int(wait * 1000), 10 if emit_every else 100))
            for tp, records in batches.items():
                for record in records:
                    verdict = judge_value(record.value)
                    if isinstance(verdict, Accepted):
                        forming.add(verdict)
                        newest[tp] = max(newest.get(tp, 0), verdict.timestamp)
                    else:
                        published.invalid += 1
                    status_in += 1
            now = time.monotonic()
            if now - last_emit < emit_every:
                continue
            last_emit = now
            emitted_at = int(time.time() * 1000)
            for bar in forming.end_batch(_event_cap(consumer, newest)):
                bar["emitted_at"] = emitted_at
                key, value = f"{bar['exchange']}:{bar['symbol']}".encode(), encode(bar)
                attempts = FINAL_SEND_ATTEMPTS if bar["final"] else 1
                for attempt in range(1, attempts + 1):
                    try:
                        publisher.send(topic, key, value)
                        published.updates += 1
                        break
                    except KafkaTimeoutError:
                        if attempt == attempts:
                            published.dropped += 1
            if now - last_status >= settings.ingest.status_interval_s:
                _status(forming, published, status_in / (now - last_status), publisher.pending)
                last_status, status_in = now, 0
    finally:
        consumer.close()
        try:
            publisher.close(timeout=10)
        except KafkaError as exc:
            log.error("closing the live-bar producer: %s", exc)
    _status(forming, published, 0.0, 0)
    return published


def _event_cap(consumer: KafkaConsumer, newest: dict[TopicPartition, int]) -> int | None:
    """The newest event time of the slowest partition that has unread records; None when all are caught up.

    Unread is judged by the broker's end offsets, asked now: the high-water marks a fetch
    reports are as old as that fetch, and in a burst a partition that looked caught up a
    fetch ago may hold older trades than the ones just read from another.
    """
    assignment = list(consumer.assignment())
    ends = consumer.end_offsets(assignment)
    cap: int | None = None
    for tp in assignment:
        end = ends.get(tp)
        if end is not None and consumer.position(tp) >= end:
            continue  # caught up: it holds nothing back
        behind = newest.get(tp, 0)  # nothing read from it yet: hold the watermark where it is
        cap = behind if cap is None else min(cap, behind)
    return cap


def _status(forming: FormingBars, published: Published, rate: float, pending: int) -> None:
    c = forming.counts
    log.info(
        "in %.0f rec/s | trades %d heartbeats %d invalid %d late %d duplicates %d before-start %d | "
        "open windows %d finals %d | updates %d dropped %d pending %d | watermark %s",
        rate, c.trades, c.heartbeats, published.invalid, c.late, c.duplicates, c.before_start,
        forming.open_windows, c.finals, published.updates, published.dropped, pending, forming.watermark_ms,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    parser = argparse.ArgumentParser(prog="python -m jobs.forming_bars_service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers")
    parser.add_argument("--topic", dest="kafka_topic")
    parser.add_argument("--live-topic", dest="kafka_live_bars_topic")
    parser.add_argument("--watermark", dest="stream_watermark")
    parser.add_argument("--from-beginning", action="store_true", help="read the trades topic from its start")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGTERM)")
    args = vars(parser.parse_args(argv))
    from_beginning, duration = args.pop("from_beginning"), args.pop("duration")
    try:
        settings = load(**args)
    except ValidationError as exc:
        print(f"live_bars: bad settings:\n{exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    stop_on_signals(stop)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    try:
        published = run(settings, stop, from_beginning=from_beginning)
    except TopicMissing as exc:
        print(f"live_bars: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"live_bars: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    print(f"live_bars: {published.updates} updates published, {published.dropped} dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
