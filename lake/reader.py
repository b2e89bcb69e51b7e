"""DuckDB over the lake: one view per table, built from committed files only.

`connect()` reads each table's file list from the Spark sink's log and the compaction
manifest (`lake.manifest.live_files`), never by globbing, so files of a batch that crashed
before its commit are not read, and a compacted partition is read once. Views are typed by
`lake.schema`; the Hive partition columns (`symbol`, `date`) are pruned by filters.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import duckdb

from lake.macros import MACROS
from lake.manifest import COMPACTED_DIR, MANIFEST_DIR, Manifest, live_paths, live_paths_and_manifest, partition_of
from lake.sandbox import lock_down
from lake.schema import LATE, PROGRESS, Column, duckdb_type
from lake.settings import Settings
from lake.tables import PARAMETERS_DIR, TABLES, VIEWS

__all__ = ["VIEWS", "connect", "views_sql"]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty_select(columns: tuple[Column, ...]) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    return f"SELECT {cols} LIMIT 0"


def select_files_sql(table: str, files: list[str], columns: tuple[Column, ...] | None = None) -> str:
    """SELECT over some of a table's files, typed by `lake.schema`; an empty SELECT for none."""
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


def view_sql(
    table: str, table_dir: Path, columns: tuple[Column, ...] | None = None, files: list[str] | None = None
) -> str:
    """CREATE VIEW text for one table over its live files (`files`, if already listed)."""
    select = select_files_sql(table, live_paths(table_dir) if files is None else files, columns)
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


def newest_partition_files(files: list[str]) -> list[str]:
    """The files of each symbol's newest date partition (from the paths alone)."""
    newest: dict[str, str] = {}
    for f in files:
        if m := _SYMBOL_DATE.search(f):
            newest[m[1]] = max(newest.get(m[1], ""), m[2])
    return [f for f in files if (m := _SYMBOL_DATE.search(f)) and newest[m[1]] == m[2]]


def latest_bars_sql(ohlc_dir: Path, files: list[str] | None = None, manifest: Manifest | None = None) -> str:
    """View `latest_bars`: each symbol's newest bar per exchange, reading only newest partitions.

    A symbol's newest bar is in its newest date partition, so the view opens those files
    only; of a compacted partition, not its compacted files but the small file compaction
    keeps with each exchange's newest row of them (`newest` in the manifest), plus the files
    written since. An exchange that did not trade the symbol on that date is not listed.
    """
    if files is None or manifest is None:
        files, manifest = live_paths_and_manifest(ohlc_dir)
    prefix = str(ohlc_dir).rstrip("/") + "/"
    chosen = []
    for path in newest_partition_files(files):
        relative = path.removeprefix(prefix)
        compacted = relative.startswith(COMPACTED_DIR + "/")
        entry = manifest.partitions.get(partition_of(relative.removeprefix(COMPACTED_DIR + "/"))) if compacted else None
        if entry is None or not entry.newest:
            chosen.append(path)
        elif relative == entry.files[0]:  # the partition's compacted files: their summary instead
            chosen.append(prefix + entry.newest)
    newest = select_files_sql("ohlc", chosen)
    return (
        f"CREATE OR REPLACE VIEW latest_bars AS SELECT * FROM ({newest}) "
        "QUALIFY row_number() OVER (PARTITION BY exchange, symbol ORDER BY window_start DESC) = 1"
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


LATE_VIEW_SQL = (
    "CREATE OR REPLACE VIEW late AS SELECT "
    + ", ".join(
        f"CAST({'rows_dropped_by_watermark' if c.name == 'late_rows' else c.name} AS {duckdb_type(c.type)}) AS {c.name}"
        for c in LATE
    )
    + " FROM progress WHERE rows_dropped_by_watermark > 0"
)


Listing = dict[str, tuple[list[str], Manifest]]  # table -> its committed files and the manifest read with them


def list_tables(lake: Path) -> Listing:
    """Every table's committed files (`lake.manifest.live_paths_and_manifest`)."""
    return {table: live_paths_and_manifest(lake / table) for table in TABLES}


def change_marker(lake: str | Path) -> tuple[tuple[str, int], ...]:
    """What changes whenever a reader's snapshot would: the modification times of each table's
    commit log and manifest folders, the table records and the progress files. Cheap (a few
    dozen stat calls), so a long-lived reader can skip `connect` while the lake is unchanged."""
    root = Path(lake)
    folders = [root / PARAMETERS_DIR, root / "_progress"]
    for table in TABLES:
        folders += [root / table / "_spark_metadata", root / table / COMPACTED_DIR / MANIFEST_DIR]
    out = []
    for folder in folders:
        with contextlib.suppress(OSError):
            out.append((str(folder), folder.stat().st_mtime_ns))
    for day in sorted((root / "_progress").glob("date=*")):
        for f in sorted(day.iterdir()):
            with contextlib.suppress(OSError):
                out.append((str(f), f.stat().st_mtime_ns))
    return tuple(out)


def views_sql(path: str | Path | None = None, settings: Settings | None = None, listed: Listing | None = None) -> str:
    """The SQL that creates every view and macro: for the stock DuckDB CLI (`duckdb -init`).

    `listed`: the tables' files as `list_tables` found them (listed here when not given).
    """
    settings = settings or Settings()
    lake = Path(path if path is not None else settings.lake.path).resolve()
    statements = ["SET TimeZone = 'UTC'"]
    # The macros are created over empty placeholder views: creating one binds the views it
    # names, which over a long file list costs as much as a query.
    columns = {table: spec.columns_in(lake) for table, spec in TABLES.items()}  # as recorded with each table
    statements += [f"CREATE OR REPLACE VIEW {t} AS {_empty_select(columns[t])}" for t in TABLES]
    statements += [m.strip() for m in MACROS]
    listed = listed if listed is not None else list_tables(lake)
    statements += [view_sql(table, lake / table, columns[table], listed[table][0]) for table in TABLES]
    statements += [latest_bars_sql(lake / "ohlc", *listed["ohlc"]), progress_view_sql(lake), LATE_VIEW_SQL]
    return ";\n".join(statements) + ";\n"


def connect(
    path: str | Path | None = None, read_only: bool = True, listed: Listing | None = None, threads: int | None = None
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
    """
    settings = Settings()
    lake = Path(path if path is not None else settings.lake.path).resolve()
    con = duckdb.connect(":memory:")
    try:
        con.execute(views_sql(lake, settings, listed))
        if threads is not None:
            con.execute("SET threads = ?", [threads])
        if read_only:
            lock_down(con, lake, [*TABLES, "_progress"])  # the folders the views read
    except Exception:
        con.close()
        raise
    return con
