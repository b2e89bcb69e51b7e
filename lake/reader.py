"""DuckDB over the lake: one view per table, built from committed files only."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lake.commit_log import committed_files
from lake.schema import PARTITION_COLUMNS, TABLES, Column, duckdb_type
from lake.settings import Settings


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty_select(columns: tuple[Column, ...]) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in columns)
    return f"SELECT {cols} LIMIT 0"


def view_sql(table: str, table_dir: Path) -> str:
    """CREATE VIEW text for one table over its committed files, typed by `lake.schema`."""
    columns = TABLES[table]
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
        f"hive_partitioning = true, hive_types = {{{hive_types}}})"
    )


def connect(path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per lake table (`ohlc`, `rejects`).

    The views are a snapshot of what was committed when this was called;
    connect again to see newer batches. Timestamps are UTC TIMESTAMPTZ.
    """
    lake = Path(path if path is not None else Settings().lake_path)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        con.execute(view_sql(table, lake / table))
    return con
