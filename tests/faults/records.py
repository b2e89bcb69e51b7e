"""Fuzzed records written straight to the trades topic: the job must not fail, and every one must
land in `rejects` with a reason (the job's verdict, checked against `core.wire.judge`).

Each record is a real trade with one field broken (wrong type, missing, absurd, huge, NaN text),
or a value that is not a JSON object at all; `judge` confirms each is one the job refuses, so
the expected count of rejects is exact.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

import lake
from core.settings import REPO_ROOT
from core.wire import Accepted, judge_value
from infra.run import SPARK_ENV
from ingest.tape import read_tape
from tests.faults import FaultRow

SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"
FIELDS = ("type", "v", "exchange", "symbol", "price", "quantity", "timestamp", "trade_id", "is_buyer_maker")
BAD_VALUES: list[Any] = [
    None, "", " ", [], {}, True, -1, 0, "-1", "0", "abc", "NaN", "Infinity", "1e400", 10**30, 2**63, -(2**63) - 1,
    1.5, "61837.123456789", "9" * 40, "🚀", {"nested": [1, {"deep": True}]}, "quote", 99, 99.0,
]  # fmt: skip
GARBAGE = [b"", b"{not json", b"[1,2]", b'"text"', b"null", b"\xff\xfe\xfa", b"{" * 5000, b"42"]


def fuzzed_values(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    base = list(read_tape(SAMPLE))[:2000]
    out: list[bytes] = []
    while len(out) < n:
        if rng.random() < 0.1:
            value = rng.choice(GARBAGE)
        else:
            record = dict(rng.choice(base))
            field = rng.choice(FIELDS)
            if rng.random() < 0.15:
                record.pop(field, None)
            else:
                record[field] = rng.choice(BAD_VALUES)
            try:
                value = orjson.dumps(record)
            except TypeError:  # an integer beyond 64 bits: as text JSON the job reads
                value = repr(record).encode()
        if not isinstance(judge_value(value or None), Accepted):
            out.append(value)
    return out


def campaign(bootstrap: str, work: Path, n: int = 100_000, seed: int = 7) -> tuple[FaultRow, Counter[str]]:
    from infra.kafka_local import LocalKafka

    topic, feed = f"fuzz.{seed}.{n}", f"fuzz.{seed}.{n}.feed"
    host, port = bootstrap.split(":")
    LocalKafka(work, host, int(port)).ensure_topics([topic, feed], partitions=2)
    values = fuzzed_values(n, seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for value in values:
        producer.send(topic, key=b"fuzz", value=value)
    producer.flush()
    producer.close()
    job = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), str(REPO_ROOT / "jobs" / "stream_ohlc.py"),
         "--bootstrap-servers", bootstrap, "--topic", topic, "--feed-events-topic", feed,
         "--lake", str(work / "lake"), "--checkpoints", str(work / "cp"), "--trigger", "available-now"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False,
        env={**os.environ, **SPARK_ENV},
    )  # fmt: skip
    reasons: Counter[str] = Counter()
    rejects = bars = 0
    if job.returncode == 0:
        con = lake.connect(work / "lake")
        reasons = Counter(dict(con.sql("SELECT reason, count(*) FROM rejects GROUP BY 1").fetchall()))
        rejects = sum(reasons.values())
        bars = con.sql("SELECT count(*) FROM ohlc").fetchall()[0][0]
    without_reason = reasons.get(None, 0) + reasons.get("", 0)
    row = FaultRow(
        "fuzzed records -> crypto.trades -> job", n, job.returncode == 0,
        lost=n - rejects, duplicated=max(0, rejects - n),
        detail=f"job exit {job.returncode}; rejects {rejects:,} ({len(reasons)} reasons, {without_reason} without); "
        f"bars {bars}",
    )  # fmt: skip
    if job.returncode != 0:
        row.detail += "; " + (job.stderr or job.stdout)[-300:].replace("\n", " ")
    return row, reasons
