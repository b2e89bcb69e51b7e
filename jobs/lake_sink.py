"""The stream job's sink: each micro-batch -> its lake tables, committed exactly once.

The job runs one streaming query (`jobs.stream_ohlc`) whose output is the union of its
branches' rows, each branch's rows in a struct column named after it (`tables_frame`):
rejects and feed_events, written as they come; `bar_updates`, the windows the batch changed
(the bars run in update mode), and `heartbeats`, the accepted heartbeats' times.
`foreachBatch` hands every micro-batch to a `LakeSink`, which splits it, releases the
windows the batch closed (`jobs.bar_closer.BarCloser`) as lake/ohlc, and commits each table's
rows as one Delta commit with delta-rs (`lake.delta.append`). It computes volatility from the
released bars on the driver (`jobs.volatility.VolatilityState`), so volatility lands in the
same batch as its bars. A batch's other tables commit side by side (threads: delta-rs works
outside the GIL), then ohlc; a table with no rows in the batch gets no commit.

Exactly once: Spark re-runs a batch that did not finish with the same offsets and state, so
it produces the same rows. Each commit carries a Delta app transaction: the app id is this
checkpoint's (`<checkpoint>/lake_sink/app.json`, made once; a new checkpoint is a new app),
the version is the batch id, and a table whose transaction version for the app is already
that batch's is not written again. After all its tables hold batch N, the sink saves its
state after N: `<checkpoint>/lake_sink/state/N.open.arrow` (the open windows), then `N.json`
(the closer, the volatility state and the batch's late trades); a batch whose `N.json`
exists is done.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial, reduce
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.schema import Column
from core.tables import JOB_TABLES, TABLES, record_windows
from jobs.bar_closer import BarCloser, Key
from jobs.revision_feed import RevisionFeed
from jobs.revisions import Revisions, commit_metadata, committed_late_keys, late_keys, live_bars, revise, split_due
from jobs.tick_writer import (
    TRADE_FILE,
    TRADE_FILES,
    TRADES_TABLE,
    TickPlan,
    spark_watermark_ms,
    stored_files,
    trade_files,
    write_ticks,
)
from jobs.volatility import VolatilityState
from lake import delta

log = logging.getLogger(__name__)


class LakeWriteFailed(RuntimeError):
    """The lake could not take a batch (its disk is full): the job stops; a restart writes it."""


class SinkStateError(RuntimeError):
    """The sink's state in the checkpoint cannot be used. (Not SystemExit: raised inside
    foreachBatch, a BaseException would end py4j's callback thread and hang the query.)"""


# The query's tables (`core.tables`), in the order a batch commits them; volatility, whose
# columns follow the configured windows, is computed from the released bars and follows.
STREAM_TABLES: dict[str, tuple[Column, ...]] = {
    name: TABLES[name].columns for name in JOB_TABLES if not TABLES[name].varying_columns
}
VOLATILITY_TABLE = "volatility"
# The branches lake/ohlc is made of: the bars query's update rows (OHLC + LAST_EVENT_TIME) and
# the accepted heartbeats' event times.
BAR_UPDATES = "bar_updates"
HEARTBEATS = "heartbeats"
STATES_KEPT = 3
# lake/trades is written by the batch's tasks (`jobs.tick_writer`); of the trades partitions,
# the driver hands them the files of the days from the one before the watermark's on.
RECENT_DAYS = 1
State = tuple[BarCloser, VolatilityState | None]
REVISION_KEY = ("exchange", "symbol", "window_start")  # revisions (`jobs.revisions`) are merged by it


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
        watermark_delay_ms: int | None = None,
        feed: RevisionFeed | None = None,
    ) -> None:
        """With "ohlc" among `tables`, each batch carries BAR_UPDATES and HEARTBEATS instead, and
        `watermark_delay_ms` is the query's; `volatility_windows_s`: compute lake/volatility from
        the released bars with these windows."""
        if "ohlc" in tables and watermark_delay_ms is None:
            raise ValueError("a sink that writes ohlc needs the query's watermark delay")
        self.lake = lake
        self.tables = tables
        self.delay_ms = watermark_delay_ms or 0
        self.windows_s = volatility_windows_s or ()
        self.volatility = TABLES[VOLATILITY_TABLE].columns_for(self.windows_s) if self.windows_s else None
        if self.windows_s:  # readers take the windows from the lake, not from their own settings
            record_windows(lake, self.windows_s, VOLATILITY_TABLE)
            self.volatility = TABLES[VOLATILITY_TABLE].columns_in(lake)  # every window the table holds
        self.feed = feed  # where revised bars are published, after their commit
        self.home = checkpoint / "lake_sink"
        self.state_dir = self.home / "state"
        self.app_id = self._app_id()
        self._tables: dict[str, DeltaTable] = {}  # opened once, brought up to date before each commit
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lake-commit")
        self.late: dict[int, int] = {}  # batch id -> trades the closer found late (see `late_trades`)
        # The state after the last batch this sink wrote, so the next batch need not read it back
        # from disk; dropped while a batch runs, so a batch that fails leaves none behind.
        self._carried: tuple[int, BarCloser, VolatilityState | None] | None = None

    def _app_id(self) -> str:
        """The Delta app id of this checkpoint's commits: made the first time it starts."""
        path = self.home / "app.json"
        if path.exists():
            return str(json.loads(path.read_text())["app_id"])
        app_id = f"stream_ohlc-{uuid.uuid4()}"
        _write_atomically(path, json.dumps({"app_id": app_id}))
        return app_id

    def table(self, name: str, columns: tuple[Column, ...]) -> DeltaTable:
        if name not in self._tables:
            self._tables[name] = delta.ensure_table(self.lake, name, columns)
        return self._tables[name]

    def _commit(self, name: str, rows: pa.Table, columns: tuple[Column, ...], batch_id: int) -> bool:
        table = self.table(name, columns)
        return delta.append(table, rows, txn=(self.app_id, batch_id), sort_by=TABLES[name].sort_key)

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        done = (self.state_dir / f"{batch_id}.json").exists()
        state = None if done else self._state(batch_id)
        if TRADES_TABLE in self.tables:
            plan = self.tick_plan(batch_id, None if state is None else state[0])
            frame = frame.mapInArrow(partial(write_ticks, plan, TRADES_TABLE), mapped_schema(frame.schema))
        batch = frame.toArrow()
        computed = time.perf_counter()
        try:
            written = self.write(batch, batch_id, state)
        except (OSError, DeltaError) as exc:
            if getattr(exc, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and "No space left" not in str(exc):
                raise
            self._carried = None
            self._tables.clear()  # opened again, from the log, by the restarted job
            where = getattr(exc, "filename", None) or self.lake
            raise LakeWriteFailed(
                f"no space left on the lake's disk ({where}) writing batch {batch_id}: free "
                f"space and start the job again; batch {batch_id} is then written once, nothing before it is lost"
            ) from exc
        log.info(
            "batch %d: computed in %.0f ms, written in %.0f ms (%s)",
            batch_id,
            (computed - started) * 1000,
            (time.perf_counter() - computed) * 1000,
            " ".join(f"{name}={rows}" for name, rows in written.items()) or "nothing new",
        )

    def late_trades(self, batch_id: int) -> int:
        """Trades of batch `batch_id` that came after their window was released (the query's
        progress counts them with the rows Spark dropped as late)."""
        if batch_id in self.late:
            return self.late.pop(batch_id)
        path = self.state_dir / f"{batch_id}.json"
        return int(json.loads(path.read_text()).get("late", 0)) if path.exists() else 0

    def tick_plan(self, batch_id: int, closer: BarCloser | None) -> TickPlan:
        """What the batch's tasks need to write their trades (`jobs.tick_writer`); `closer` is
        the bar closer as it stood before the batch (None: the batch is done)."""
        table = self.table(TRADES_TABLE, self.tables[TRADES_TABLE])
        table.update_incremental()
        held = table.transaction_version(self.app_id)
        table_dir = str(delta.table_path(self.lake, TRADES_TABLE).resolve())
        if closer is None or (held is not None and held >= batch_id):
            return TickPlan(table_dir, batch_id, write=False, spark_watermark_ms=0, released_us=None)
        watermark_ms = spark_watermark_ms(self.home.parent, batch_id)
        since = dt.datetime.fromtimestamp(watermark_ms / 1000, dt.UTC).date() - dt.timedelta(days=RECENT_DAYS)
        recent = "" if watermark_ms <= 0 else since.isoformat()
        return TickPlan(
            table_dir, batch_id, write=True, spark_watermark_ms=watermark_ms, released_us=closer.floor_us,
            stored=stored_files(table, lambda d: d >= recent), stored_from=recent, version=table.version(),
        )  # fmt: skip

    def _state(self, batch_id: int) -> State:
        """The closer and volatility state after batch `batch_id - 1`: carried, or from disk."""
        carried, self._carried = self._carried, None
        if carried is not None and carried[0] == batch_id - 1:
            return carried[1], carried[2]
        return self._state_before(batch_id)

    def write(self, batch: pa.Table, batch_id: int, state: State | None = None) -> dict[str, int]:
        """Commit batch `batch_id`; returns rows per table written now (empty if it was done before).

        `state`: the closer and volatility state before the batch, if the caller took it already."""
        if (self.state_dir / f"{batch_id}.json").exists():
            log.info("batch %d is already in the lake", batch_id)
            return {}
        bars = "ohlc" in self.tables
        row_tables = [n for n in self.tables if n not in ("ohlc", TRADES_TABLE)]
        tables = split_tables(batch, row_tables + ([BAR_UPDATES, HEARTBEATS] if bars else []))
        closer, volatility_state = state if state is not None else self._state(batch_id)
        late = 0
        if bars:
            released = closer.apply(tables[BAR_UPDATES], tables[HEARTBEATS])
            tables["ohlc"], late = released.final, released.late_trades
            if late:
                log.warning("batch %d: %d trades came after their window was written: counted as late", batch_id, late)
        files = trade_files(batch) if TRADES_TABLE in self.tables else None
        due: set[Key] = set()
        if bars and files is not None:
            trades = self.table(TRADES_TABLE, self.tables[TRADES_TABLE])
            keys = late_keys(files) if files.num_rows else committed_late_keys(trades, self.app_id, batch_id)
            due, closer.pending = split_due(keys | closer.pending, closer.floor_us)
        commits = {name: (tables[name], columns) for name, columns in self.tables.items() if name != TRADES_TABLE}
        if volatility_state is not None and not due:  # side by side with the other tables
            assert self.volatility is not None
            commits[VOLATILITY_TABLE] = (self._volatility(volatility_state, tables["ohlc"]), self.volatility)
        pending = {
            name: self._pool.submit(self._commit, name, rows, columns, batch_id)
            for name, (rows, columns) in commits.items()
            if rows.num_rows and name != "ohlc"
        }
        if files is not None and files.num_rows:
            pending[TRADES_TABLE] = self._pool.submit(self._commit_files, files, batch_id, late_keys(files))
        written = {
            name: commits[name][0].num_rows if name in commits else 0 for name, done in pending.items() if done.result()
        }
        if TRADES_TABLE in written:
            assert files is not None
            written[TRADES_TABLE] = sum(files.column("rows").to_pylist())
        revised = None
        if due:  # lake/trades now holds the late trades: their windows from it, then volatility
            revised = self._revise(due, tables["ohlc"], volatility_state)
            tables["ohlc"] = revised.final
            if volatility_state is not None:
                assert self.volatility is not None
                parts = [self._volatility(volatility_state, revised.final), _frame(revised.volatility)]
                if self._merge(VOLATILITY_TABLE, parts, self.volatility, batch_id):
                    written[VOLATILITY_TABLE] = sum(t.num_rows for t in parts)
        # ohlc last: a batch's ohlc version is committed after all its other commits, so the lake
        # as of an ohlc version's time holds every table's part of that batch and none of the
        # next (`lake.connect(as_of=...)`).
        final = tables["ohlc"] if bars else None
        if final is not None and revised is not None and revised.ohlc.num_rows:
            if self._merge("ohlc", [final, revised.ohlc], self.tables["ohlc"], batch_id):
                written["ohlc"] = final.num_rows + revised.ohlc.num_rows
                log.info("batch %d: %d bars revised from lake/trades", batch_id, revised.ohlc.num_rows)
        elif final is not None and final.num_rows and self._commit("ohlc", final, self.tables["ohlc"], batch_id):
            written["ohlc"] = final.num_rows
        if revised is not None and revised.revised and self.feed is not None and "ohlc" in written:
            ohlc = self.table("ohlc", self.tables["ohlc"])
            ohlc.update_incremental()
            self.feed.publish(live_bars(ohlc, revised.revised, revised.last_trade_ms))
        self._save_state(batch_id, closer, volatility_state, late)
        self.late[batch_id] = late
        self._carried = (batch_id, closer, volatility_state)
        return written

    def _commit_files(self, files: pa.Table, batch_id: int, late: set[Key]) -> bool:
        """lake/trades' files of the batch; the windows of its late trades go in the commit's
        metadata, for a re-run of the batch that finds the trades committed (`committed_late_keys`)."""
        table = self.table(TRADES_TABLE, self.tables[TRADES_TABLE])
        metadata = commit_metadata(late, self.app_id, batch_id)
        return delta.commit_files(table, files.to_pylist(), txn=(self.app_id, batch_id), metadata=metadata)

    def _revise(self, due: set[Key], final: pa.Table, state: VolatilityState | None) -> Revisions:
        trades = self.table(TRADES_TABLE, self.tables[TRADES_TABLE])
        trades.update_incremental()
        ohlc = self.table("ohlc", self.tables["ohlc"])
        ohlc.update_incremental()
        volatility = None
        if state is not None:
            assert self.volatility is not None
            volatility = self.table(VOLATILITY_TABLE, self.volatility)
            volatility.update_incremental()
        return revise(due, final, trades, ohlc, volatility, state, dt.datetime.now(dt.UTC))

    @staticmethod
    def _volatility(state: VolatilityState, bars: pa.Table) -> pa.Table:
        return pa.Table.from_pandas(state.apply(bars.to_pandas()), preserve_index=False)

    def _merge(self, name: str, parts: list[pa.Table], columns: tuple[Column, ...], batch_id: int) -> bool:
        table = self.table(name, columns)
        rows = pa.concat_tables([delta.conform(p, table) for p in parts if p.num_rows])
        return delta.merge_revised(table, rows, REVISION_KEY, txn=(self.app_id, batch_id))

    def _state_before(self, batch_id: int) -> tuple[BarCloser, VolatilityState | None]:
        saved = sorted(
            (int(p.stem), p) for p in self.state_dir.glob("*.json") if p.stem.isdigit() and int(p.stem) < batch_id
        )
        empty = VolatilityState(self.windows_s) if self.volatility else None
        if not saved:
            return BarCloser(self.delay_ms), empty
        previous, path = saved[-1]
        if previous != batch_id - 1:
            log.warning("batch %d: sink state found for batch %d, not %d", batch_id, previous, batch_id - 1)
        try:
            data = json.loads(path.read_text())
            closer_state = data["closer"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SinkStateError(
                f"{path}, the sink's state after batch {previous}, is unreadable ({exc}); the checkpoint "
                f"{self.home.parent} is damaged. Restore it from a backup, or start over (new --lake and "
                "--checkpoints); a guess would lose or repeat bars."
            ) from None
        open_path = path.with_suffix(".open.arrow")
        open_windows = ipc.open_file(open_path).read_all() if open_path.exists() else None
        closer = BarCloser.from_json(closer_state, open_windows, self.delay_ms)
        volatility = VolatilityState.from_json(data["volatility"], self.windows_s) if self.volatility else None
        return closer, volatility

    def _save_state(self, batch_id: int, closer: BarCloser, volatility: VolatilityState | None, late: int) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if closer.open is not None:
            open_path = self.state_dir / f"{batch_id}.open.arrow"
            with ipc.new_file(open_path, closer.open.schema) as out:
                out.write_table(closer.open)
        state = {"closer": closer.to_json(), "volatility": volatility.to_json() if volatility else None, "late": late}
        _write_atomically(self.state_dir / f"{batch_id}.json", json.dumps(state))
        for path in self.state_dir.iterdir():
            stem = path.name.split(".")[0]
            if stem.isdigit() and int(stem) <= batch_id - STATES_KEPT:
                path.unlink(missing_ok=True)


def _frame(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False) if rows else pa.table({})


def mapped_schema(schema: T.StructType) -> T.StructType:
    """The batch's schema after `write_ticks`: the trades' column replaced by the files written."""
    from pyspark.sql.pandas.types import from_arrow_type

    kept = [f for f in schema.fields if f.name != TRADES_TABLE]
    return T.StructType([*kept, T.StructField(TRADE_FILES, from_arrow_type(TRADE_FILE), True)])


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
