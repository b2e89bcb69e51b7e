"""DuckDB over the lake: one view per table, over the files of one Delta version.

`connect()` takes each table's current files from its Delta log (`lake.delta`), never by
globbing, so files of a batch that crashed before its commit, and files a compaction replaced,
are not read. Views are typed by `core.schema`. Filters on the partition columns (`symbol`,
`date`) prune files before any is opened, and DuckDB prunes row groups by their min/max
statistics; `latest_bars` picks its files by the log's per-file statistics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute

from core.schema import LATE, PROGRESS, Column, duckdb_type
from core.settings import Settings
from core.tables import TABLES, VIEWS, windows_of
from lake import delta
from lake.macros import MACROS
from lake.sandbox import lock_down

__all__ = ["VIEWS", "connect", "views_sql"]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty_select(columns: tuple[Column, ...]) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    return f"SELECT {cols} LIMIT 0"


def select_files_sql(table: str, files: list[str], columns: tuple[Column, ...] | None = None) -> str:
    """SELECT over some of a table's files, typed by `core.schema`; an empty SELECT for none."""
    spec = TABLES[table]
    columns = columns or spec.columns
    if not files:
        return _empty_select(columns)
    file_list = ", ".join(_sql_string(f) for f in files)
    hive_types = ", ".join(
        f"{_sql_string(c.name)}: {duckdb_type(c.type)}" for c in columns if c.name in spec.partition_by
    )
    cols = ", ".join(f"CAST({c.name} AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    scan = f"read_parquet([{file_list}], hive_partitioning = true, hive_types = {{{hive_types}}}"
    if not spec.varying_columns:
        return f"SELECT {cols} FROM {scan})"
    # Columns vary with the windows the files were written with: union_by_name (which opens
    # every file to bind the view) reads each file's own, and the empty typed SELECT supplies
    # recorded columns that no file holds (yet, or any more): NULL, never a bind error.
    empty = _empty_select(columns).replace(" LIMIT 0", " WHERE false")
    return f"SELECT {cols} FROM ({empty} UNION ALL BY NAME SELECT * FROM {scan}, union_by_name = true))"


def view_sql(table: str, columns: tuple[Column, ...], files: list[str]) -> str:
    """CREATE VIEW text for one table over the files of its Delta snapshot."""
    select = select_files_sql(table, files, columns)
    rule = TABLES[table].newest_per_key  # append-only tables where a newer row supersedes
    if rule:
        select = f"SELECT * FROM ({select}) QUALIFY row_number() OVER ({rule}) = 1"
    return f"CREATE OR REPLACE VIEW {table} AS {select}"


_SYMBOL_DATE = re.compile(r"/symbol=([^/]+)/date=([0-9-]+)/")


def files_by_partition(files: list[str]) -> dict[tuple[str, str], tuple[str, ...]]:
    """A symbol-partitioned table's files per (symbol, date) partition, from the paths alone."""
    out: dict[tuple[str, str], list[str]] = {}
    for f in files:
        if m := _SYMBOL_DATE.search(f):
            out.setdefault((m[1], m[2]), []).append(f)
    return {key: tuple(sorted(v)) for key, v in out.items()}


@dataclass(frozen=True)
class NewestBarFiles:
    """The files `latest_bars` reads (`newest_bar_files`)."""

    bounded: list[str]  # each holds one exchange, and that exchange's newest bar at its max(window_start)
    since: dt.datetime | None  # the oldest of those maxima: rows before it cannot be anyone's newest bar
    other: list[str]  # files with several exchanges or without stats: read whole

    @property
    def paths(self) -> list[str]:
        return self.bounded + self.other


# Delta's statistics may hold timestamps truncated to milliseconds: read from a little earlier.
STATS_SLACK = dt.timedelta(milliseconds=1)


def newest_bar_files(snapshot: TableSnapshot) -> NewestBarFiles:
    """The files that hold each (exchange, symbol)'s newest bar, chosen by the Delta log's stats.

    A symbol's newest bar is in its newest date partition. There, files are taken newest first
    (by their max(window_start)); a file that holds one exchange only (min = max of `exchange`)
    is skipped once a newer file of that exchange was taken, as it cannot hold that exchange's
    newest bar. A file without stats, or with several exchanges, is always taken. So the view
    reads one file per exchange and symbol in the usual case, and is exact in every case. Of a
    one-exchange file only the rows from its max(window_start) on are needed (`since`): a
    day's compacted file is not read whole for its last row.
    """
    actions = snapshot.actions
    if actions is None or actions.num_rows == 0:
        return NewestBarFiles([], None, [])
    names = actions.column_names
    paths = actions.column("path").to_pylist()
    symbols = actions.column("partition.symbol").to_pylist()
    dates = [str(d) for d in actions.column("partition.date").to_pylist()]
    have_stats = {"min.exchange", "max.exchange", "max.window_start"} <= set(names)
    lows = actions.column("min.exchange").to_pylist() if have_stats else [None] * len(paths)
    highs = actions.column("max.exchange").to_pylist() if have_stats else [None] * len(paths)
    ends = actions.column("max.window_start").to_pylist() if have_stats else [None] * len(paths)
    newest: dict[str, str] = {}
    for symbol, day in zip(symbols, dates, strict=True):
        newest[symbol] = max(newest.get(symbol, ""), day)
    candidates = [i for i, (s, d) in enumerate(zip(symbols, dates, strict=True)) if newest[s] == d]
    # Newest first; files without stats first (they are taken anyway).
    with_stats = sorted((i for i in candidates if ends[i] is not None), key=lambda i: ends[i] or 0, reverse=True)
    ordered = [i for i in candidates if ends[i] is None] + with_stats
    bounded: list[int] = []
    other: list[int] = []
    settled: set[tuple[str, str | None]] = set()
    for i in ordered:
        single = lows[i] is not None and lows[i] == highs[i] and ends[i] is not None
        if single and (symbols[i], lows[i]) in settled:
            continue
        (bounded if single else other).append(i)
        if single:
            settled.add((symbols[i], lows[i]))
    newest_ends: list[dt.datetime] = [end for i in bounded if (end := ends[i]) is not None]
    since = min(newest_ends, default=None)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return NewestBarFiles([paths[i] for i in bounded], since, [paths[i] for i in other])


def latest_bars_sql(snapshot: TableSnapshot) -> str:
    """View `latest_bars`: each symbol's newest bar per exchange (`newest_bar_files`). An exchange
    that did not trade the symbol on its newest date is not listed."""
    chosen = newest_bar_files(snapshot)
    parts = []
    if chosen.bounded:
        assert chosen.since is not None
        since = (chosen.since - STATS_SLACK).isoformat()
        parts.append(
            f"SELECT * FROM ({select_files_sql('ohlc', chosen.bounded)}) WHERE window_start >= TIMESTAMPTZ '{since}'"
        )
    if chosen.other or not parts:
        parts.append(f"SELECT * FROM ({select_files_sql('ohlc', chosen.other)})")
    newest = " UNION ALL ".join(parts)
    # arg_max over the whole row rather than QUALIFY row_number() = 1: DuckDB plans the latter as a
    # scan for the keys and a second scan of the files for the rows (bench/RESULTS.md: 46 -> 27 ms).
    return (
        f"CREATE OR REPLACE VIEW latest_bars AS SELECT unnest(arg_max(bar, bar.window_start)) "
        f"FROM ({newest}) AS bar GROUP BY bar.exchange, bar.symbol"
    )


def progress_view_sql(lake: Path) -> str:
    """The job's per-batch progress records (jobs/progress.py), or an empty view."""
    files = sorted((lake / "_progress").glob("date=*/*.ndjson"))
    if not files:
        return f"CREATE OR REPLACE VIEW progress AS {_empty_select(PROGRESS)}"
    file_list = ", ".join(_sql_string(str(f)) for f in files)
    types = ", ".join(
        f"{_sql_string(c.name)}: {_sql_string('VARCHAR' if c.type == 'timestamp' else duckdb_type(c.type))}"
        for c in PROGRESS
    )
    cols = ", ".join(
        f"CAST({c.name} AS TIMESTAMPTZ) AS {c.name}" if c.type == "timestamp" else c.name for c in PROGRESS
    )
    return (
        f"CREATE OR REPLACE VIEW progress AS SELECT {cols} FROM read_json([{file_list}], "
        f"format = 'newline_delimited', columns = {{{types}}})"
    )


LATE_VIEW_SQL = (  # every late trade, each revised into its bar (`core.schema.LATE`)
    f"CREATE OR REPLACE VIEW late AS SELECT {', '.join(c.name for c in LATE)} FROM trades WHERE late"
)


@dataclass(frozen=True)
class TableSnapshot:
    """One table as a reader sees it: the files of one Delta version, with their stats."""

    table: str
    version: int | None  # None: the table does not exist (yet)
    columns: tuple[Column, ...]  # the view's columns (volatility's follow the table's schema)
    files: list[str]  # local paths of the version's data files
    actions: pa.Table | None = None  # the add actions (partition values, stats); None without a table

    @property
    def bytes(self) -> int:
        return 0 if self.actions is None else int(pa.compute.sum(self.actions.column("size_bytes")).as_py() or 0)


Listing = dict[str, TableSnapshot]  # table -> its snapshot
AsOf = int | str | dt.datetime | None


def _as_of_time(lake: Path, as_of: AsOf) -> dt.datetime | None:
    """`as_of` as a time: a timestamp as given; a version number as the time of that ohlc version."""
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
    if isinstance(as_of, str) and not as_of.isdigit():
        return _as_of_time(lake, dt.datetime.fromisoformat(as_of))
    table = delta.open_table(lake, "ohlc")
    if table is None:
        raise ValueError(f"{lake} has no ohlc table to travel back in")
    version = int(as_of)
    for entry in table.history():
        if int(entry["version"]) == version:
            return dt.datetime.fromtimestamp(int(entry["timestamp"]) / 1000, dt.UTC)
    raise ValueError(f"ohlc has no version {version} in its log (versions older than LAKE_LOG_RETENTION are gone)")


def snapshot_table(lake: Path, name: str, as_of: AsOf = None, *, ohlc_version: int | None = None) -> TableSnapshot:
    """A table's files at its newest version, or as of a time (`as_of`)."""
    spec = TABLES[name]
    table = delta.open_table(lake, name)
    if table is not None and ohlc_version is not None:
        table.load_as_version(ohlc_version)
    elif table is not None and isinstance(as_of, dt.datetime):
        try:
            table.load_as_version(as_of)
        except Exception:  # the table was created after that time: empty then
            table = None
    if table is None:
        return TableSnapshot(name, None, spec.columns_in(lake), [])
    columns = spec.columns
    if spec.varying_columns:
        columns = spec.columns_for(windows_of(delta.table_columns(table)))
    have = set(delta.table_columns(table))
    delta.refuse_without_defaults(table, [c for c in columns if c.name not in have])
    actions = delta.add_actions(table)
    return TableSnapshot(name, table.version(), columns, actions.column("path").to_pylist(), actions)


def _version_number(as_of: AsOf) -> int | None:
    if isinstance(as_of, int):
        return as_of
    return int(as_of) if isinstance(as_of, str) and as_of.isdigit() else None


def open_snapshots(lake: Path, as_of: AsOf, pool: ThreadPoolExecutor) -> dict[str, Future[TableSnapshot]]:
    """Every table's snapshot, being taken side by side in `pool` (see `list_tables`).

    Opening a table is mostly delta-rs listing and reading its log, outside the GIL."""
    delta.refuse_old_format(lake)
    version, when = _version_number(as_of), _as_of_time(lake, as_of)
    return {
        name: pool.submit(snapshot_table, lake, name, when, ohlc_version=version if name == "ohlc" else None)
        for name in TABLES
    }


def _taken(snapshot: TableSnapshot) -> Future[TableSnapshot]:
    future: Future[TableSnapshot] = Future()
    future.set_result(snapshot)
    return future


def list_tables(lake: Path, as_of: AsOf = None) -> Listing:
    """Every table's snapshot: the newest versions, or as of a version or time (see `connect`)."""
    with ThreadPoolExecutor(max_workers=len(TABLES), thread_name_prefix="lake-open") as pool:
        return {name: future.result() for name, future in open_snapshots(lake, as_of, pool).items()}


def change_marker(lake: str | Path) -> tuple[tuple[str, int], ...]:
    """What changes whenever a reader's snapshot would: the modification times of each table's
    Delta log folder and the progress files. Cheap (a few dozen stat calls), so a long-lived
    reader can skip `connect` while the lake is unchanged."""
    root = Path(lake)
    folders = [root / "_progress"] + [root / table / delta.LOG_DIR for table in TABLES]
    out = []
    for folder in folders:
        with contextlib.suppress(OSError):
            out.append((str(folder), folder.stat().st_mtime_ns))
    for day in sorted((root / "_progress").glob("date=*")):
        for f in sorted(day.iterdir()):
            with contextlib.suppress(OSError):
                out.append((str(f), f.stat().st_mtime_ns))
    return tuple(out)


def preamble_sql(columns: dict[str, tuple[Column, ...]] | None = None) -> list[str]:
    """The time zone and the macros, created over empty placeholder views (creating a macro binds
    the views it names, which over a long file list costs as much as a query). `columns`: the
    placeholders' columns per table (each table's registry columns when not given)."""
    columns = columns or {t: TABLES[t].columns for t in TABLES}
    statements = ["SET TimeZone = 'UTC'"]
    statements += [f"CREATE OR REPLACE VIEW {t} AS {_empty_select(columns[t])}" for t in TABLES]
    return statements + [m.strip() for m in MACROS]


def tables_sql(lake: Path, listed: Listing) -> list[str]:
    """The views over the tables' snapshots, `latest_bars`, `progress` and `late`."""
    return [view_sql(t, listed[t].columns, listed[t].files) for t in TABLES] + derived_sql(lake, listed)


def derived_sql(lake: Path, listed: Listing) -> list[str]:
    """The views that are not one table's snapshot: `latest_bars`, `progress` and `late`."""
    return [latest_bars_sql(listed["ohlc"]), progress_view_sql(lake), LATE_VIEW_SQL]


def _script(statements: list[str]) -> str:
    return ";\n".join(statements) + ";\n"


def views_sql(
    path: str | Path | None = None, settings: Settings | None = None, listed: Listing | None = None, as_of: AsOf = None
) -> str:
    """The SQL that creates every view and macro: for the stock DuckDB CLI (`duckdb -init`).

    `listed`: the tables' snapshots as `list_tables` took them (taken here when not given).
    """
    settings = settings or Settings()
    lake = Path(path if path is not None else settings.lake.path).resolve()
    listed = listed if listed is not None else list_tables(lake, as_of)
    return _script(preamble_sql({t: listed[t].columns for t in TABLES}) + tables_sql(lake, listed))


def connect(
    path: str | Path | None = None,
    read_only: bool = True,
    listed: Listing | None = None,
    threads: int | None = None,
    as_of: AsOf = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ohlc, volatility, rejects, feed_events, late, progress.

    The views are a snapshot of what was committed when this was called; connect again to
    see newer batches. Timestamps are UTC TIMESTAMPTZ. Macros `candles(...)` and
    `realized_volatility(...)` are defined (`lake.macros`).

    With `read_only` (the default) the connection can read lake files and nothing else, and
    its settings are locked (`lake.sandbox`); user-typed SQL should still go through
    `lake.sandbox.run_query`. `read_only=False` leaves DuckDB as it is, e.g. to COPY a
    query's result to a file. `listed`: the files to show, as `list_tables` found them.
    `threads`: DuckDB's threads per query (a server running many queries at once wants 1).
    `as_of`: time travel. A version number is a version of `ohlc`; the other tables are read as
    of that version's commit time. A timestamp (datetime or ISO text) reads every table as of then.
    Versions are kept for LAKE_LOG_RETENTION, their files for LAKE_GRACE.
    """
    settings = Settings()
    lake = Path(path if path is not None else settings.lake.path).resolve()
    con = None
    try:
        with ThreadPoolExecutor(max_workers=len(TABLES), thread_name_prefix="lake-open") as pool:
            # The tables' logs are read while DuckDB starts and makes its macros; each table's view
            # is made as soon as its snapshot is there (ohlc's, the largest log, usually last).
            given = listed
            pending = open_snapshots(lake, as_of, pool) if given is None else {t: _taken(given[t]) for t in TABLES}
            con = duckdb.connect(":memory:")
            con.execute(_script(preamble_sql()))
            names = {future: name for name, future in pending.items()}
            for future in as_completed(names):
                name, snapshot = names[future], future.result()
                if snapshot.files or snapshot.columns != TABLES[name].columns:  # else its placeholder is it
                    con.execute(view_sql(name, snapshot.columns, snapshot.files))
            listed = {name: future.result() for name, future in pending.items()}
        con.execute(_script(derived_sql(lake, listed)))
        if threads is not None:
            con.execute("SET threads = ?", [threads])
        if read_only:
            lock_down(con, lake, [*TABLES, "_progress"])  # the folders the views read
    except Exception:
        if con is not None:
            con.close()
        raise
    return con
