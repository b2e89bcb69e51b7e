"""`python -m ingest`: publish trades to Kafka.

python -m ingest replay FILE [FILE ...] [--topic T] [--bootstrap-servers H:P] [--speed X]
python -m ingest normalize --format hftbacktest SRC [SRC ...] -o TAPE.ndjson.gz
"""

from __future__ import annotations

import argparse
import heapq
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingest.captures import read_cryptofeed_jsonl, read_cryptofeed_raw, read_hftbacktest
from ingest.normalize import binance_capture, coinbase_capture
from ingest.producer import DeliveryFailed, Publisher
from ingest.replay import pacing_time, replay
from ingest.tape import read_tape, write_tape
from lake import logs
from lake.settings import interval_ms, load

log = logging.getLogger("ingest")


def _cmd_replay(args: argparse.Namespace) -> int:
    settings = load(kafka_bootstrap_servers=args.bootstrap_servers, kafka_topic=args.topic)
    missing = [f for f in args.files if not f.exists()]
    if missing:
        print(f"ingest: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    records: Iterator[dict[str, Any]] = (r for f in args.files for r in read_tape(f))
    # Heartbeat past the tape's end + watermark + one bar, so the job closes the last bars.
    closing = interval_ms(settings.stream_watermark) + 1000
    with Publisher(settings) as publisher:
        stats = replay(records, publisher, settings.kafka_topic, speed=args.speed, closing_heartbeat_after_ms=closing)
    print(f"replayed {stats.trades} trades and {stats.heartbeats} heartbeats to {settings.kafka_topic}")
    return 0


# Capture format -> (frame reader, normalizer) for the venue those captures hold here.
_FORMATS = {
    "hftbacktest": (read_hftbacktest, binance_capture),  # Binance combined stream
    "cryptofeed": (read_cryptofeed_raw, coinbase_capture),  # Coinbase Exchange feed
    "cryptofeed-jsonl": (read_cryptofeed_jsonl, coinbase_capture),  # Coinbase Advanced Trade
}


def _cmd_normalize(args: argparse.Namespace) -> int:
    read, normalize = _FORMATS[args.format]
    # Merge the captures by receipt time, as the frames reached the recorder.
    streams = [normalize(read(src)) for src in args.sources]
    merged = heapq.merge(*streams, key=pacing_time)
    count = write_tape(args.output, merged)
    print(f"wrote {count} trades to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    parser = argparse.ArgumentParser(prog="python -m ingest", description="Crypto trade ingestor.")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replay", help="publish normalized tapes (NDJSON, .gz ok) to Kafka")
    rep.add_argument("files", nargs="+", type=Path)
    rep.add_argument("--topic")
    rep.add_argument("--bootstrap-servers")
    rep.add_argument("--speed", type=float, default=0.0, help="0 = as fast as possible, 1 = real time, N = N x")
    rep.set_defaults(func=_cmd_replay)

    norm = sub.add_parser("normalize", help="turn raw captures into a normalized tape")
    norm.add_argument("sources", nargs="+", type=Path)
    norm.add_argument("--format", choices=sorted(_FORMATS), default="hftbacktest")
    norm.add_argument("-o", "--output", type=Path, required=True)
    norm.set_defaults(func=_cmd_normalize)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"ingest: bad settings:\n{exc}", file=sys.stderr)
        return 2
    except DeliveryFailed as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
