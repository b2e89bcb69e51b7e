"""`python -m ingest`: the trade ingestor.

python -m ingest live   --exchange VENUE --symbols BTCUSDT,ETHUSDT [--url WS] [--record DIR] [--backfill]
python -m ingest record --exchange VENUE --symbols BTC-USD [--out DIR]      (raw frames to disk only)
(VENUE: one of `ingest.venues.REGISTRY`: binance, coinbase, ...)
python -m ingest replay FILE [FILE ...] [--format auto|tape|recording|hftbacktest|cryptofeed|cryptofeed-jsonl]
                        [--speed X] [--strict] [--create-topics]
python -m ingest synth  --rate N --symbols K (--count N | --duration S) [--speed X]
python -m ingest demo   [--tape TAPE] [--loops N] [--speed X]   (the sample tape, looped as if it were now)
python -m ingest normalize --format hftbacktest SRC [SRC ...] -o TAPE.ndjson.gz

Kafka and feed settings come from `core.settings` (env, .env); flags override them.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from pydantic import ValidationError

from core.settings import REPO_ROOT, Settings, interval_ms, load
from ingest import side_records
from ingest.connection import RetriesExhausted
from ingest.demo import demo_records
from ingest.errors import BadMessage
from ingest.frames import FORMATS, Frame, detect_format, frames_to_records, read_frames
from ingest.live import run_feed, stop_on_signals
from ingest.producer import DeliveryFailed, Publisher
from ingest.replay import pacing_time, replay
from ingest.synth import synth_trades
from ingest.tape import read_tape, write_tape
from ingest.tape_check import TapeCounts, TapeProblem, checked_records
from ingest.topics import BrokerUnreachable, TopicsMissing, check_topics
from ingest.venues import REGISTRY, SubscriptionRejected
from lake import logs

log = logging.getLogger("ingest")
SAMPLE_TAPE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"


def _settings(args: argparse.Namespace) -> Settings:
    return load(
        kafka_bootstrap_servers=getattr(args, "bootstrap_servers", None),
        kafka_topic=getattr(args, "topic", None),
        ingest_backfill=getattr(args, "backfill", None) or None,
        coinbase_feed=getattr(args, "coinbase_feed", None),
    )


def _symbols(text: str) -> list[str]:
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("give at least one symbol")
    return symbols


def _cmd_live(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kafka = settings.kafka
    _check_topics(settings, [kafka.topic, kafka.dlq_topic, kafka.feed_events_topic], args.create_topics)
    stop = threading.Event()
    stop_on_signals(stop)
    counters = run_feed(
        args.exchange, args.symbols, settings, stop, url=args.url, record_dir=args.record, duration_s=args.duration
    )
    print(f"{args.exchange}: {counters.trades} trades, {counters.dead_letters} dead letters, {counters.gaps} gaps")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    settings = _settings(args).with_overrides(
        record_rotate_bytes=args.rotate_bytes, record_rotate_s=args.rotate_seconds
    )
    stop = threading.Event()
    stop_on_signals(stop)
    out = args.out or Path(settings.record.path)
    counters = run_feed(
        args.exchange,
        args.symbols,
        settings,
        stop,
        url=args.url,
        publish=False,
        record_dir=out,
        duration_s=args.duration,
    )
    print(f"{args.exchange}: recorded {counters.frames} frames to {out}")
    return 0


def _records(
    files: list[Path], fmt: str, publisher: Publisher, settings: Settings, counts: TapeCounts
) -> Iterator[dict[str, Any]]:
    for path in files:
        kind = detect_format(path) if fmt == "auto" else fmt
        log.info("replaying path=%s format=%s", path, kind)
        if kind == "tape":

            def bad_line(problem: TapeProblem) -> None:
                source = f"replay:{problem.path.name}:{problem.line}"
                record = side_records.dead_letter(source, problem.reason, problem.detail, problem.raw, None)
                publisher.send(settings.kafka.dlq_topic, source.encode(), side_records.to_json(record))
                log.warning("dead letter %s", problem)

            yield from checked_records(path, counts, bad_line)
            continue
        source = f"replay:{path.name}"

        def dead_letter(frame: Frame, exc: BadMessage, source: str = source) -> None:
            record = side_records.dead_letter(source, exc.reason, exc.detail, frame[2], frame[0])
            publisher.send(settings.kafka.dlq_topic, source.encode(), side_records.to_json(record))
            log.warning("dead letter source=%s reason=%s raw=%.200s", source, exc.reason, frame[2])

        yield from frames_to_records(read_frames(path, kind), dead_letter, settings)


def _cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    missing = [f for f in args.files if not f.exists()]
    if missing:
        print(f"ingest: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if args.strict and (problems := _tape_problems(args.files, args.format)):
        for problem in problems[:10]:
            print(f"ingest: {problem}", file=sys.stderr)
        more = " (the first 10 shown)" if len(problems) > 10 else ""
        print(f"ingest: --strict: {len(problems):,} lines are not wire records{more}; nothing sent", file=sys.stderr)
        return 2
    _check_topics(settings, [settings.kafka.topic, settings.kafka.dlq_topic], args.create_topics)
    stop = threading.Event()
    stop_on_signals(stop)
    # Heartbeat past the tape's end + watermark + one bar, so the job closes the last bars.
    closing = interval_ms(settings.stream.watermark) + 1000
    counts = TapeCounts()
    with Publisher(settings) as publisher:
        records = _records(args.files, args.format, publisher, settings, counts)
        stats = replay(
            records, publisher, settings.kafka.topic, speed=args.speed, closing_heartbeat_after_ms=closing, stop=stop
        )
    print(f"replayed {stats.trades} trades and {stats.heartbeats} heartbeats to {settings.kafka.topic}")
    summary = counts.summary(settings.kafka.dlq_topic)
    if summary:
        print(summary, file=sys.stderr if counts.problems else sys.stdout)
    return 1 if counts.problems else 0


def _tape_problems(files: list[Path], fmt: str) -> list[TapeProblem]:
    """Every problem line of the tapes among `files`, read through before anything is sent."""
    problems: list[TapeProblem] = []
    for path in files:
        if (detect_format(path) if fmt == "auto" else fmt) == "tape":
            for _ in checked_records(path, TapeCounts(), problems.append):
                pass
    return problems


def _check_topics(settings: Settings, topics: list[str], create: bool) -> None:
    for name in check_topics(settings, topics, create=create):
        print(f"created topic {name} ({settings.kafka.partitions} partitions)", file=sys.stderr)


def _cmd_synth(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.count is None and args.duration is None:
        print("ingest synth: give --count or --duration", file=sys.stderr)
        return 2
    _check_topics(settings, [settings.kafka.topic], args.create_topics)
    stop = threading.Event()
    stop_on_signals(stop)
    start_ms = int(time.time() * 1000)
    records = synth_trades(
        args.rate, args.symbols, start_ms=start_ms, count=args.count, duration_s=args.duration, seed=args.seed
    )
    closing = interval_ms(settings.stream.watermark) + 1000
    with Publisher(settings) as publisher:
        stats = replay(
            records, publisher, settings.kafka.topic, speed=args.speed, closing_heartbeat_after_ms=closing, stop=stop
        )
    print(f"published {stats.trades} synthetic trades to {settings.kafka.topic}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _check_topics(settings, [settings.kafka.topic], args.create_topics)
    stop = threading.Event()
    stop_on_signals(stop)
    tape = list(read_tape(args.tape))
    records = demo_records(tape, loops=args.loops, now_ms=lambda: int(time.time() * 1000))
    closing = interval_ms(settings.stream.watermark) + 1000
    with Publisher(settings) as publisher:
        # Paced by the wall clock: each record leaves when time.time() reaches its ingest_ts.
        stats = replay(
            records, publisher, settings.kafka.topic, speed=args.speed, closing_heartbeat_after_ms=closing,
            stop=stop, clock=time.time, progress=args.loops is not None,
        )  # fmt: skip
    print(f"demo: published {stats.trades} trades to {settings.kafka.topic}")
    return 0


def _cmd_normalize(args: argparse.Namespace) -> int:
    bad: list[tuple[Frame, BadMessage]] = []
    settings = load()
    streams = [
        frames_to_records(
            read_frames(src, detect_format(src) if args.format == "auto" else args.format), _collect(bad), settings
        )
        for src in args.sources
    ]
    # Merge the captures by receipt time, as the frames reached the recorder.
    count = write_tape(args.output, heapq.merge(*streams, key=pacing_time))
    print(f"wrote {count} trades to {args.output}")
    for (ts, exchange, text), exc in bad:
        print(f"skipped bad {exchange} frame at {ts}: {exc.reason} {exc.detail} {text[:200]}", file=sys.stderr)
    return 1 if bad else 0


def _collect(bad: list[tuple[Frame, BadMessage]]) -> Callable[[Frame, BadMessage], None]:
    return lambda frame, exc: bad.append((frame, exc))


def _kafka_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", help="trades topic (KAFKA_TOPIC)")
    parser.add_argument("--bootstrap-servers", help="KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument(
        "--create-topics", action="store_true",
        help="create missing topics (KAFKA_PARTITIONS, KAFKA_RETENTION_MS) instead of stopping with their names",
    )  # fmt: skip


def _feed_flags(parser: argparse.ArgumentParser) -> None:
    venues = "; ".join(f"{name}: {spec.doc}" for name, spec in REGISTRY.items())
    parser.add_argument("--exchange", choices=tuple(REGISTRY), required=True, help=venues)
    parser.add_argument("--symbols", type=_symbols, required=True, help="comma-separated, as the venue spells them")
    parser.add_argument("--url", help="WebSocket URL (default: <VENUE>_WS_URL, else the venue's public endpoint)")
    parser.add_argument("--coinbase-feed", choices=("matches", "market_trades"), help="COINBASE_FEED")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until SIGTERM)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description="Crypto trade ingestor.")
    sub = parser.add_subparsers(dest="command", required=True)

    live = sub.add_parser("live", help="live trades from a venue's WebSocket to Kafka")
    _feed_flags(live)
    _kafka_flags(live)
    live.add_argument("--record", type=Path, metavar="DIR", help="also record the raw frames here")
    live.add_argument("--backfill", action="store_true", help="fetch detected gaps over REST (INGEST_BACKFILL)")
    live.set_defaults(func=_cmd_live)

    rec = sub.add_parser("record", help="record a venue's raw frames to rotating gzip NDJSON files")
    _feed_flags(rec)
    rec.add_argument("--out", type=Path, help="directory (RECORD_PATH)")
    rec.add_argument("--rotate-bytes", type=int, help="rotate after this many bytes (RECORD_ROTATE_BYTES)")
    rec.add_argument("--rotate-seconds", type=float, help="rotate after this many seconds (RECORD_ROTATE_S)")
    rec.set_defaults(func=_cmd_record)

    rep = sub.add_parser("replay", help="publish tapes or raw recordings to Kafka")
    rep.add_argument("files", nargs="+", type=Path)
    rep.add_argument("--format", choices=("auto", *FORMATS), default="auto")
    rep.add_argument("--speed", type=float, default=0.0, help="0 = as fast as possible, 1 = real time, N = N x")
    rep.add_argument(
        "--strict", action="store_true",
        help="read every tape through first and send nothing if a line is not a wire record",
    )  # fmt: skip
    _kafka_flags(rep)
    rep.set_defaults(func=_cmd_replay)

    syn = sub.add_parser("synth", help="synthetic trades for load tests")
    syn.add_argument("--rate", type=float, required=True, help="mean trades per second")
    syn.add_argument("--symbols", type=int, required=True, help="number of instruments")
    syn.add_argument("--count", type=int, help="stop after this many trades")
    syn.add_argument("--duration", type=float, help="stop after this many seconds of trades")
    syn.add_argument("--speed", type=float, default=1.0, help="1 = at --rate in real time, 0 = as fast as possible")
    syn.add_argument("--seed", type=int, default=7)
    _kafka_flags(syn)
    syn.set_defaults(func=_cmd_synth)

    demo = sub.add_parser("demo", help="the demo market: the sample tape looped as if it were happening now")
    demo.add_argument("--tape", type=Path, default=SAMPLE_TAPE, help=f"default {SAMPLE_TAPE}")
    demo.add_argument("--loops", type=int, help="stop after this many loops (default: forever)")
    demo.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible")
    _kafka_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    norm = sub.add_parser("normalize", help="turn raw captures into a normalized tape")
    norm.add_argument("sources", nargs="+", type=Path)
    norm.add_argument("--format", choices=("auto", *FORMATS[1:]), default="auto")
    norm.add_argument("-o", "--output", type=Path, required=True)
    norm.set_defaults(func=_cmd_normalize)
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"ingest: bad settings:\n{exc}", file=sys.stderr)
        return 2
    except (SubscriptionRejected, ValueError, TopicsMissing) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    except BrokerUnreachable as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    except (DeliveryFailed, RetriesExhausted) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"ingest: Kafka: {exc} (is the broker up? `make kafka-up`)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
