"""The fault campaign: inject each fault, print one row per fault (injected, survived, trades lost,
trades duplicated, time to recover), judged against the input.

    .venv/bin/python bench/faults.py [--frames 100000] [--statements 10000] [--records 100000]
                                     [--bootstrap-servers H:P]

Rows: fuzzed WebSocket frames into the live pipeline of every venue; generated SQL against the
sandbox; fuzzed records through Kafka into the real job; the broker killed and restarted during
live ingest and during the job; the job killed at random points. Short versions run in `make
test` (tests/test_faults.py, tests/test_faults_disk.py, tests/test_exactly_once.py), with the
full disk and the deleted or damaged checkpoint. Without --bootstrap-servers a broker is started on free
loopback ports. Verbose logs go to the file whose path is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path

from common import broker

from core.settings import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # the campaign's injectors live with the tests (tests/faults/)
from ingest.tape import read_tape, write_tape
from tests.faults import HEADER, FaultRow, broker_kills, frames, job_kills, records, sql
from tests.support.data import SAMPLE
from tests.support.job import replay
from tests.support.kafka_helpers import fresh_topics
from tests.support.lake_builder import SinkLake, ohlc_rows
from tests.support.messy_tape import messy_tape


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--job-kills", type=int, default=20)
    parser.add_argument("--broker-kills", type=int, default=3)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    log_file = REPO_ROOT / ".logs" / f"faults-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    log_file.parent.mkdir(exist_ok=True)
    logging.basicConfig(filename=log_file, level=logging.INFO)
    print(f"fault campaign (verbose log: {log_file})")
    print(HEADER, flush=True)
    rows: list[FaultRow] = []

    def report(row: FaultRow, started: float) -> None:
        rows.append(row)
        print(row.line() + f"  [{time.monotonic() - started:.0f} s]", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.monotonic()
        report(frames.campaign(args.frames)[0], started)

        started = time.monotonic()
        lake_dir = work / "sql" / "lake"
        SinkLake(lake_dir).write_batch(ohlc_rows("AAAUSD", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 500))
        report(sql.campaign(lake_dir, args.statements)[0], started)

        with broker(args.bootstrap_servers, work) as bootstrap:
            started = time.monotonic()
            (work / "records").mkdir()
            report(records.campaign(bootstrap, work / "records", args.records)[0], started)

            started = time.monotonic()
            settings = fresh_topics(bootstrap, work)
            tape, _ = messy_tape(list(read_tape(SAMPLE)))
            write_tape(work / "tape.ndjson", tape)
            replay(work / "tape.ndjson", bootstrap, settings.kafka.topic)
            report(job_kills.campaign(bootstrap, settings, work / "kills", args.job_kills), started)

        for name, run in (("ingest", broker_kills.kill_during_ingest), ("job", broker_kills.kill_during_job)):
            started = time.monotonic()
            (work / f"broker-{name}").mkdir()
            report(run(work / f"broker-{name}", kills=args.broker_kills), started)
    return 0 if all(r.survived and r.lost == 0 and r.duplicated == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
