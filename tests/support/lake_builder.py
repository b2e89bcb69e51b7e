"""Lakes laid out as the stream job's sink commits them (Delta tables, one commit per batch), without Spark."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.schema import OHLC_TABLE, Column, to_arrow
from core.tables import TABLES
from lake import delta


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
    """Commits one batch of rows per call, as the job's sink does (`lake.delta.append` with an app transaction)."""

    APP = "tests-sink"

    def __init__(self, lake: Path, table: str = "ohlc", columns: tuple[Column, ...] = OHLC_TABLE) -> None:
        self.lake = lake
        self.table = table
        self.table_dir = lake / table
        self.partitions = TABLES[table].partition_by
        self.columns = columns
        self.batch = 0

    def write_batch(self, rows: list[dict[str, object]], *, commit: bool = True) -> list[Path]:
        """Commit `rows` as the next batch; returns the files it added. With `commit=False`, write
        the files only, as a batch killed before its commit leaves them (no log entry)."""
        if not commit:
            return self._orphans(rows)
        table = delta.ensure_table(self.lake, self.table, self.columns)
        before = set(table.file_uris())
        delta.append(table, pa.Table.from_pylist(rows, schema=self._schema(rows)), txn=(self.APP, self.batch))
        self.batch += 1
        return [Path(f) for f in table.file_uris() if f not in before]

    def _schema(self, rows: list[dict[str, object]], columns: tuple[Column, ...] | None = None) -> pa.Schema:
        """The rows' schema: columns with a default (`revision`) only where the rows give them."""
        given = set(rows[0]) if rows else set()
        return to_arrow(tuple(c for c in columns or self.columns if c.default is None or c.name in given))

    def _orphans(self, rows: list[dict[str, object]]) -> list[Path]:
        schema = self._schema(rows, tuple(c for c in self.columns if c.name not in self.partitions))
        by_partition: dict[tuple[object, ...], list[dict[str, object]]] = {}
        for row in rows:
            by_partition.setdefault(tuple(row[p] for p in self.partitions), []).append(row)
        written = []
        for values, part in sorted(by_partition.items(), key=repr):
            folder = self.table_dir.joinpath(*(f"{p}={v}" for p, v in zip(self.partitions, values, strict=True)))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            pq.write_table(pa.Table.from_pylist(part, schema=schema), path)
            written.append(path)
        return written
