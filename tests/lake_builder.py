"""Lakes laid out as the stream job's file sink writes them, without Spark, for lake tests."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lake.schema import OHLC, Column, to_arrow
from lake.tables import TABLES
from lake.writer import log_entry


def ohlc_rows(symbol: str, start: dt.datetime, seconds: int, price: float = 100.0) -> list[dict[str, object]]:
    rows = []
    for i in range(seconds):
        p = Decimal(str(round(price + i * 0.01, 2)))
        t = start + dt.timedelta(seconds=i)
        rows.append({
            "exchange": "binance", "symbol": symbol, "window_start": t, "window_end": t + dt.timedelta(seconds=1),
            "open": p, "high": p + Decimal("0.5"), "low": p - Decimal("0.5"), "close": p + Decimal("0.1"),
            "volume": Decimal("2"), "quote_volume": p * 2, "vwap": float(p), "trade_count": 2,
            "buy_volume": Decimal("1.5"), "sell_volume": Decimal("0.5"),
            "first_trade_id": 2 * i, "last_trade_id": 2 * i + 1, "date": t.date(),
        })  # fmt: skip
    return rows


class SinkLake:
    """Writes one file per partition per batch and the `_spark_metadata` log, like Spark's file sink."""

    def __init__(self, lake: Path, table: str = "ohlc", columns: tuple[Column, ...] = OHLC) -> None:
        self.table_dir = lake / table
        self.partitions = TABLES[table].partition_by
        self.columns = columns
        self.batch = 0
        self.entries: list[dict[str, object]] = []

    def write_batch(self, rows: list[dict[str, object]], *, commit: bool = True) -> list[Path]:
        schema = to_arrow(tuple(c for c in self.columns if c.name not in self.partitions))
        by_partition: dict[tuple[object, ...], list[dict[str, object]]] = {}
        for row in rows:
            by_partition.setdefault(tuple(row[p] for p in self.partitions), []).append(row)
        written = []
        for values, part in sorted(by_partition.items(), key=repr):
            folder = self.table_dir.joinpath(*(f"{p}={v}" for p, v in zip(self.partitions, values, strict=True)))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-00000-{uuid.uuid4()}.c000.snappy.parquet"
            pq.write_table(pa.Table.from_pylist(part, schema=schema), path)
            written.append(path)
        if commit:
            self._log([*written])
        return written

    def _log(self, files: list[Path]) -> None:
        log_dir = self.table_dir / "_spark_metadata"
        log_dir.mkdir(parents=True, exist_ok=True)
        new = [log_entry(f, modification_ms=0) for f in files]
        self.entries += new
        compact = self.batch % 10 == 9
        name = f"{self.batch}.compact" if compact else str(self.batch)
        lines = ["v1", *(json.dumps(e) for e in (self.entries if compact else new))]
        (log_dir / name).write_text("\n".join(lines) + "\n")
        self.batch += 1
