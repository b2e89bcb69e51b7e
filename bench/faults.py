"""The fault campaign: inject each fault, print one row per fault (injected, survived, trades lost,
trades duplicated, time to recover), judged against the input.

    .venv/bin/python bench/faults.py [--frames 100000] [--statements 10000] [--records 100000]
                                     [--bootstrap-servers H:P]

Rows so far: fuzzed WebSocket frames into the live pipeline of every venue; generated SQL
against the sandbox; fuzzed records through Kafka into the real job. Short versions of each run
in `make test` (tests/test_faults.py). Without --bootstrap-servers a broker is started on free
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

from lake.settings import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # the campaign's injectors live with the tests (tests/faults/)
from tests.faults import HEADER, FaultRow, frames, records, sql
from tests.lake_builder import SinkLake, ohlc_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
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
    return 0 if all(r.survived and r.lost == 0 and r.duplicated == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
