"""DuckDB over the lake: one view per table, built from committed files only."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lake.commit_log import committed_files
from lake.schema import PARTITION_COLUMNS, PROGRESS_FIELDS, TABLES, Column, duckdb_type, volatility_columns
from lake.settings import Settings


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty_select(columns: tuple[Column, ...]) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    return f"SELECT {cols} LIMIT 0"


def table_columns(table: str, settings: Settings | None = None) -> tuple[Column, ...]:
    """A table's columns; volatility's depend on the configured windows."""
    if table == "volatility":
        return volatility_columns((settings or Settings()).stream_volatility_windows_s)
    return TABLES[table]


def view_sql(table: str, table_dir: Path, columns: tuple[Column, ...] | None = None) -> str:
    """CREATE VIEW text for one table over its committed files, typed by `lake.schema`."""
    columns = columns or table_columns(table)
    files = committed_files(table_dir)
    if not files:
        return f"CREATE OR REPLACE VIEW {table} AS {_empty_select(columns)}"
    file_list = ", ".join(_sql_string(str(f)) for f in files)
    hive_types = ", ".join(
        f"{_sql_string(c.name)}: {duckdb_type(c.type)}" for c in columns if c.name in PARTITION_COLUMNS[table]
    )
    cols = ", ".join(f"CAST({c.name} AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {cols} FROM read_parquet([{file_list}], "
        f"hive_partitioning = true, hive_types = {{{hive_types}}}, union_by_name = true)"
    )


def progress_view_sql(lake: Path) -> str:
    """The job's per-batch progress records (jobs/progress.py), or an empty view."""
    files = sorted((lake / "_progress").glob("date=*/*.ndjson"))
    if not files:
        cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {name}" for name in PROGRESS_FIELDS)
        return f"CREATE OR REPLACE VIEW progress AS SELECT {cols} LIMIT 0"
    file_list = ", ".join(_sql_string(str(f)) for f in files)
    return (
        f"CREATE OR REPLACE VIEW progress AS SELECT * EXCLUDE (date) FROM read_json([{file_list}], "
        "format = 'newline_delimited', hive_partitioning = true, union_by_name = true)"
    )


def connect(path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per lake table and `progress`.

    The views are a snapshot of what was committed when this was called;
    connect again to see newer batches. Timestamps are UTC TIMESTAMPTZ.
    """
    lake = Path(path if path is not None else Settings().lake_path)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    settings = Settings()
    for table in TABLES:
        con.execute(view_sql(table, lake / table, table_columns(table, settings)))
    con.execute(progress_view_sql(lake))
    return con
