"""The stream job's sink: each micro-batch -> its lake tables, committed exactly once.

The job runs one streaming query (`jobs.stream_ohlc`) whose output is the union of its
tables' rows (ohlc, rejects, feed_events), each table's rows in a struct column named after
the table (`tables_frame`). `foreachBatch` hands every micro-batch to a `LakeSink`, which
splits it and commits each table with the file sink's log format
(`lake.writer.write_batch`), so `lake.connect()` and compaction read it unchanged. It also
computes volatility from the batch's bars on the driver (`jobs.volatility.VolatilityState`),
so volatility lands in the same batch as its bars.

Exactly once: Spark re-runs a batch that did not finish with the same offsets and state, so
it produces the same rows. Each table's log file is keyed by the batch id (plus a per-table
base, for a lake that already held batches when this checkpoint began), and a batch already
in a table's log is not written again. After all its tables hold batch N, the sink saves
`<checkpoint>/lake_sink/state/N.json` (the volatility state); a batch whose state file
exists is done.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.volatility import VolatilityState
from lake import writer
from lake.commit_log import log_files
from lake.schema import FEED_EVENTS_TABLE, OHLC, REJECTS, Column, volatility_columns

log = logging.getLogger(__name__)

# The query's tables, in the order a batch commits them; volatility follows.
STREAM_TABLES: dict[str, tuple[Column, ...]] = {"ohlc": OHLC, "rejects": REJECTS, "feed_events": FEED_EVENTS_TABLE}
VOLATILITY_TABLE = "volatility"
SORT_BY = {"ohlc": "window_start", VOLATILITY_TABLE: "window_start"}
STATES_KEPT = 3


def tables_frame(frames: dict[str, DataFrame]) -> DataFrame:
    """One streaming frame: each table's rows as a struct column named after the table (null elsewhere)."""
    parts = [
        frame.select(F.struct(*frame.columns).cast(_nullable(frame.schema)).alias(name))
        for name, frame in frames.items()
    ]
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)


def _nullable(schema: T.StructType) -> T.StructType:
    """The same fields, all nullable: rows of the other tables leave this struct null, and Arrow
    refuses a non-nullable child of a nullable struct."""
    return T.StructType([T.StructField(f.name, f.dataType, True) for f in schema.fields])


def split_tables(batch: pa.Table, names: list[str]) -> dict[str, pa.Table]:
    """The Arrow form of one `tables_frame` batch -> each table's rows (flattened)."""
    out = {}
    for name in names:
        if name not in batch.column_names:
            raise ValueError(f"the batch has no column {name!r}: {batch.column_names}")
        column = batch.column(name)
        out[name] = pa.Table.from_struct_array(column.filter(pc.is_valid(column)))
    return out


class LakeSink:
    """`foreachBatch` target: commits one micro-batch to the lake's tables, each exactly once."""

    def __init__(
        self,
        lake: Path,
        checkpoint: Path,
        tables: dict[str, tuple[Column, ...]],
        volatility_windows_s: tuple[int, ...] | None = None,
    ) -> None:
        """`volatility_windows_s`: compute lake/volatility from the batch's `ohlc` rows with these windows."""
        self.lake = lake
        self.tables = tables
        self.windows_s = volatility_windows_s or ()
        self.volatility = volatility_columns(self.windows_s) if self.windows_s else None
        self.home = checkpoint / "lake_sink"
        self.state_dir = self.home / "state"
        self.bases = self._bases()

    def _bases(self) -> dict[str, int]:
        """Each table's log id for batch 0 of this checkpoint: fixed the first time it starts."""
        path = self.home / "tables.json"
        if path.exists():
            return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
        bases = {}
        for table in (*self.tables, *([VOLATILITY_TABLE] if self.volatility else [])):
            ids = [int(p.name.removesuffix(".compact")) for p in log_files(self.lake / table)]
            bases[table] = max(ids, default=-1) + 1
        _write_atomically(path, json.dumps(bases))
        return bases

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        batch = frame.toArrow()
        computed = time.perf_counter()
        written = self.write(batch, batch_id)
        log.info(
            "batch %d: computed in %.0f ms, written in %.0f ms (%s)",
            batch_id,
            (computed - started) * 1000,
            (time.perf_counter() - computed) * 1000,
            " ".join(f"{name}={rows}" for name, rows in written.items()) or "already written",
        )

    def write(self, batch: pa.Table, batch_id: int) -> dict[str, int]:
        """Commit batch `batch_id`; returns rows per table written now (empty if it was done before)."""
        if (self.state_dir / f"{batch_id}.json").exists():
            log.info("batch %d is already in the lake", batch_id)
            return {}
        tables = split_tables(batch, list(self.tables))
        written = {}
        for name, columns in self.tables.items():
            if writer.write_batch(
                self.lake, name, self.bases[name] + batch_id, tables[name], columns, SORT_BY.get(name)
            ):
                written[name] = tables[name].num_rows
        if self.volatility is None:
            self._save_state(batch_id, None)
            return written
        state = self._state_before(batch_id)
        volatility = pa.Table.from_pandas(state.apply(tables["ohlc"].to_pandas()), preserve_index=False)
        vol_id = self.bases[VOLATILITY_TABLE] + batch_id
        if writer.write_batch(
            self.lake, VOLATILITY_TABLE, vol_id, volatility, self.volatility, SORT_BY[VOLATILITY_TABLE]
        ):
            written[VOLATILITY_TABLE] = volatility.num_rows
        self._save_state(batch_id, state)
        return written

    def _state_before(self, batch_id: int) -> VolatilityState:
        saved = sorted(
            (int(p.stem), p) for p in self.state_dir.glob("*.json") if p.stem.isdigit() and int(p.stem) < batch_id
        )
        if not saved:
            return VolatilityState(self.windows_s)
        previous, path = saved[-1]
        if previous != batch_id - 1:
            log.warning("batch %d: volatility state found for batch %d, not %d", batch_id, previous, batch_id - 1)
        return VolatilityState.from_json(json.loads(path.read_text()), self.windows_s)

    def _save_state(self, batch_id: int, state: VolatilityState | None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.state_dir / f"{batch_id}.json", json.dumps(state.to_json() if state else {}))
        for path in self.state_dir.glob("*.json"):
            if path.stem.isdigit() and int(path.stem) <= batch_id - STATES_KEPT:
                path.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
