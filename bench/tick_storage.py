"""Bytes per million trades in lake/trades, against the same trades as gzip NDJSON (issue 26).

    .venv/bin/python bench/tick_storage.py [--synthetic 1000000] [--batch-seconds 1]

Two sources: the real Binance tape (ingest/tapes/sample.ndjson.gz, 15,863 trades) and
synthetic load (10 symbols at 500 trades/s, `ingest.synth`). Each is written to a new
lake's `trades` Delta table the way the job appends it (one commit per `--batch-seconds` of
trade time, ZSTD, `lake.delta.append_rows`), then compacted as `python -m lake maintain`
does for closed days (`lake.maintenance.compact`). The baseline is the same records as the
wire carries them (`orjson`, one per line), gzip level 6 (the `gzip` tool's default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import sys
import tempfile
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from core.schema import TRADES, to_arrow
from core.settings import REPO_ROOT
from ingest.synth import synth_trades
from lake import delta, maintenance

TAPE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"


def gzip_ndjson_bytes(records: list[dict[str, Any]]) -> int:
    return len(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records), compresslevel=6))


def rows(records: Iterable[dict[str, Any]], first_offset: int = 0) -> pa.Table:
    """The records as lake/trades rows (one Kafka partition, offsets in order, none late)."""

    def at(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)

    out = [
        {
            "exchange": r["exchange"], "symbol": r["symbol"], "trade_id": r["trade_id"],
            "price": Decimal(r["price"]), "quantity": Decimal(r["quantity"]), "event_time": at(r["timestamp"]),
            "is_buyer_maker": r["is_buyer_maker"], "ingest_time": at(r.get("ingest_ts") or r["timestamp"]),
            "kafka_partition": 0, "kafka_offset": first_offset + i, "late": False,
            "date": at(r["timestamp"]).date(),
        }
        for i, r in enumerate(records)
    ]  # fmt: skip
    return pa.Table.from_pylist(out, schema=to_arrow(TRADES))


def table_bytes(lake: Path) -> tuple[int, int]:
    table = delta.open_table(lake, "trades")
    assert table is not None
    actions = delta.add_actions(table)
    return int(sum(actions.column("size_bytes").to_pylist())), actions.num_rows


def measure(name: str, records: list[dict[str, Any]], batch_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        offset, batch_end = 0, records[0]["timestamp"] + batch_s * 1000
        for r in records:
            if r["timestamp"] >= batch_end and batch:
                delta.append_rows(lake, "trades", rows(batch, offset), TRADES)
                offset += len(batch)
                batch, batch_end = [], r["timestamp"] + batch_s * 1000
            batch.append(r)
        delta.append_rows(lake, "trades", rows(batch, offset), TRADES)
        appended, files = table_bytes(lake)
        write_s = time.perf_counter() - started
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        maintenance.compact(lake, "trades", before=tomorrow)
        compacted, compacted_files = table_bytes(lake)
    ndjson = gzip_ndjson_bytes(records)
    per_m = 1e6 / len(records)
    print(f"{name}: {len(records):,} trades")
    print(f"  as appended ({files:,} files, {write_s:.0f}s): {appended * per_m / 1e6:,.1f} MB per million trades")
    print(f"  compacted ({compacted_files:,} files):{'':>10}{compacted * per_m / 1e6:,.1f} MB per million trades")
    print(f"  gzip NDJSON (level 6):{'':>16}{ndjson * per_m / 1e6:,.1f} MB per million trades")
    print(f"  compacted / gzip NDJSON: {compacted / ndjson:.2f}; as appended / gzip NDJSON: {appended / ndjson:.2f}",
          flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic trades (0: none)")
    parser.add_argument("--batch-seconds", type=float, default=1.0, help="trade time per append, as a 1 s trigger")
    args = parser.parse_args()
    with gzip.open(TAPE, "rb") as f:
        tape = [r for line in f if (r := orjson.loads(line)).get("type", "trade") == "trade"]
    measure(f"real tape ({TAPE.name})", tape, args.batch_seconds)
    if args.synthetic:
        start = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
        synthetic = list(synth_trades(500, 10, start_ms=start, count=args.synthetic))
        measure("synthetic (10 symbols, 500 trades/s)", synthetic, max(args.batch_seconds, 10.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
