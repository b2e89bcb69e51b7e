"""Every lake table, in one registry: what it holds and how each part of the project treats it.

A `TableSpec` declares a table's columns (or, for volatility, the factory that builds them from
the windows it was written with), its partition columns, the column that places rows in time,
its sort key, where maintenance's watermark comes from and its newest-per-key rule. The Delta
tables (`lake.delta`), the job's sink, the reader's views, `python -m lake info`, maintenance,
the CLI's view lists, the dashboard and the models iterate over `TABLES`; adding a table is one
entry here, plus the code that writes it.

Parameters a table was written with (volatility's windows) are recorded in the lake, as the
columns of its Delta schema; readers take them from there, not from their own settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.schema import (
    DEFAULT_VOLATILITY_WINDOWS_S,
    FEED_EVENTS_TABLE,
    OHLC_TABLE,
    PREDICTIONS,
    REJECTS,
    TRADES,
    Column,
    volatility_columns,
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    doc: str
    columns: tuple[Column, ...]  # with the default parameters
    partition_by: tuple[str, ...]
    row_time: str  # places rows in time (its date is the `date` partition)
    time_column: str  # dates rows for `python -m lake info` (span, freshness)
    writer: str  # who writes it: "job" (jobs/stream_ohlc.py) or "models" (python -m models score)
    sort_key: str | None = None  # each commit's rows are sorted by it (files then prune by it)
    watermark_query: str | None = None  # maintenance closes a day once this query's watermark passed it
    newest_per_key: str | None = None  # the view keeps one row per key: a window clause
    row_order: tuple[str, ...] = ()  # after row_time, what orders rows of one time (exports); else the other columns
    column_factory: Callable[[tuple[int, ...]], tuple[Column, ...]] | None = None  # columns vary with windows
    # OPTIMIZE's files (`lake.delta.compacted_properties`): rows per row group, and whether its
    # integer and time columns are delta-encoded (they rise within a file, as a tick table's do).
    compacted_row_group_rows: int = 3600
    delta_encoded: bool = False

    @property
    def varying_columns(self) -> bool:
        """Its files may hold different columns (windows changed between runs): read by name."""
        return self.column_factory is not None

    def columns_for(self, windows_s: tuple[int, ...]) -> tuple[Column, ...]:
        return self.column_factory(windows_s) if self.column_factory is not None else self.columns

    def columns_in(self, lake: str | Path) -> tuple[Column, ...]:
        """The columns the lake's files of this table hold, by the parameters recorded with it."""
        if self.column_factory is None:
            return self.columns
        return self.column_factory(recorded_windows(lake, self.name))

    def file_columns(self, columns: tuple[Column, ...] | None = None) -> tuple[Column, ...]:
        """The columns inside its Parquet files: all but the partition columns (in the Delta log and the paths)."""
        return tuple(c for c in (columns or self.columns) if c.name not in self.partition_by)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "ohlc", "1-second OHLCV bars, final", OHLC_TABLE, ("symbol", "date"), "window_start", "window_end", "job",
            sort_key="window_start", watermark_query="ohlc",
        ),
        TableSpec(
            "trades", "every accepted trade (ticks), once each", TRADES, ("symbol", "date"), "event_time",
            "event_time", "job", sort_key="event_time", watermark_query="ohlc",
            compacted_row_group_rows=131_072, delta_encoded=True,
            row_order=("trade_id", "exchange", "symbol"),  # the bars' order of trades, then the rest of the key
        ),
        TableSpec(
            "rejects", "trade records the job refused, with the reason", REJECTS, ("date",), "kafka_timestamp",
            "kafka_timestamp", "job",
        ),
        TableSpec(
            "feed_events", "gaps, disconnects, backfills, health", FEED_EVENTS_TABLE, ("date",), "event_time",
            "event_time", "job",
        ),
        TableSpec(
            "volatility", "trailing volatility per bar", volatility_columns(DEFAULT_VOLATILITY_WINDOWS_S),
            ("symbol", "date"), "window_start", "window_start", "job",
            sort_key="window_start", watermark_query="ohlc", column_factory=volatility_columns,
        ),
        TableSpec(
            "predictions", "model scores and outcomes", PREDICTIONS, ("symbol", "date"), "time", "time", "models",
            newest_per_key="PARTITION BY model_id, exchange, symbol, time ORDER BY scored_at DESC",
        ),
    )
}  # fmt: skip
JOB_TABLES = tuple(name for name, spec in TABLES.items() if spec.writer == "job")
# Views over the job's side files and the newest bars, next to one view per table (lake.reader).
DERIVED_VIEWS = ("latest_bars", "late", "progress")
VIEWS = (*TABLES, *DERIVED_VIEWS)


def table(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; the lake's tables are {', '.join(TABLES)}") from None


def volatility_column(kind: str, window_s: int) -> str:
    """`volatility_60s`, `realized_vol_300s`, `returns_60s`: kind is volatility, realized_vol or returns."""
    return f"{kind}_{window_s}s"


_WINDOW_COLUMN = re.compile(r"volatility_(\d+)s")


def recorded_windows(lake: str | Path, name: str = "volatility") -> tuple[int, ...]:
    """Every window the table holds columns for (read from its Delta schema); the default ones
    for a lake without the table."""
    from lake.delta import open_table, table_columns  # lake.delta builds on this module

    table = open_table(lake, name)
    if table is None:
        return DEFAULT_VOLATILITY_WINDOWS_S
    return windows_of(table_columns(table)) or DEFAULT_VOLATILITY_WINDOWS_S


def windows_of(columns: list[str]) -> tuple[int, ...]:
    """The volatility windows a table's column names hold (`volatility_60s` -> 60)."""
    return tuple(sorted(int(m[1]) for c in columns if (m := _WINDOW_COLUMN.fullmatch(c))))


def record_windows(lake: str | Path, windows_s: tuple[int, ...], name: str = "volatility") -> tuple[int, ...]:
    """Give the table columns for `windows_s` (creating it if needed; columns of windows recorded
    before are kept, so older files still show theirs); returns every window it holds now."""
    from lake.delta import add_missing_columns, create_table, open_table

    spec = TABLES[name]
    table = open_table(lake, name)
    if table is None:
        create_table(lake, name, spec.columns_for(tuple(sorted(set(windows_s)))))
    else:
        add_missing_columns(table, spec.columns_for(tuple(sorted(set(recorded_windows(lake, name)) | set(windows_s)))))
    return recorded_windows(lake, name)
