"""Replay throughput into a real local broker, against a bare kafka-python producer.

    .venv/bin/python bench/ingest_throughput.py [--trades 200000] [--rounds 3] [--bootstrap-servers H:P]

Both sides send the same records, keyed the same way, with the same producer
settings (acks=all, idempotence, zstd, linger/batch from ingest.producer), to
fresh 4-partition topics. The bare producer gets the values pre-serialized and
checks no deliveries: it is the client's own ceiling. Ours is the `replay` path
users run: read the gzip tape, serialize, send with a delivery callback per
record, flush and check. Rounds alternate; the median of each side is reported
with the ratio (goal: >= 0.7). Without --bootstrap-servers a broker is started
on free loopback ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import broker, new_topic
from kafka import KafkaProducer

from core.settings import REPO_ROOT, load
from ingest.producer import Publisher
from ingest.replay import replay
from ingest.tape import read_tape, write_tape

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"


def make_tape(path: Path, trades: int) -> None:
    sample = list(read_tape(SAMPLE))
    rounds = -(-trades // len(sample))
    records = []
    for r in range(rounds):  # repeat the real tape, ids shifted so every record is distinct
        for rec in sample:
            records.append({**rec, "trade_id": rec["trade_id"] + r * 10_000_000})
    write_tape(path, records[:trades])


def bare(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    settings = load(kafka_bootstrap_servers=bootstrap)
    probe = Publisher(settings)  # the same producer settings as ours
    config = dict(probe.config)
    probe.close()
    producer = KafkaProducer(**config)
    producer.partitions_for(topic)
    start = time.perf_counter()
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    return len(payloads) / elapsed


_PRODUCER_KEYS = (
    "bootstrap_servers",
    "acks",
    "enable_idempotence",
    "compression_type",
    "linger_ms",
    "batch_size",
    "max_in_flight_requests_per_connection",
    "delivery_timeout_ms",
    "client_id",
)


def ours(bootstrap: str, topic: str, tape: Path, trades: int) -> float:
    settings = load(kafka_bootstrap_servers=bootstrap)
    with Publisher(settings) as publisher:
        publisher.warm_up(topic)
        start = time.perf_counter()
        stats = replay(read_tape(tape), publisher, topic, speed=0.0, total=trades)
        elapsed = time.perf_counter() - start
    assert stats.trades == trades, stats
    return trades / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tape = work / "tape.ndjson.gz"
        make_tape(tape, args.trades)
        payloads = [
            (f"{r['exchange']}:{r['symbol']}".encode(), json.dumps(r, separators=(",", ":")).encode())
            for r in read_tape(tape)
        ]
        with broker(args.bootstrap_servers, work) as bootstrap:
            bare_rates, our_rates = [], []
            for n in range(1, args.rounds + 1):
                bare_rates.append(bare(bootstrap, new_topic(bootstrap, work), payloads))
                our_rates.append(ours(bootstrap, new_topic(bootstrap, work), tape, args.trades))
                print(
                    f"round {n}/{args.rounds}: bare {bare_rates[-1]:,.0f} trades/s, "
                    f"replay {our_rates[-1]:,.0f} trades/s",
                    file=sys.stderr,
                    flush=True,
                )
    b, o = statistics.median(bare_rates), statistics.median(our_rates)
    print(f"trades per round: {args.trades:,}")
    print(f"bare kafka-python producer (pre-serialized): {b:,.0f} trades/s (median of {args.rounds})")
    print(f"python -m ingest replay path (gzip tape -> Kafka, every delivery checked): {o:,.0f} trades/s")
    print(f"ratio: {o / b:.2f} (goal >= 0.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
