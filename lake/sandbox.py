"""Read-only SQL typed by a person: the lake's views, and nothing else.

A connection from `lake.connect(read_only=True)` is locked down:
- file access is limited to the lake folder (`allowed_directories`) and then switched off
  for everything else (`enable_external_access = false`), so no path outside the lake can be
  read and nothing can be attached;
- extensions cannot be installed or loaded, and `lock_configuration` refuses every `SET`.

DuckDB still lets such a connection `COPY ... TO` a path *inside* the allowed folder, so
`run_query` also accepts only a single SELECT statement (a `WITH` query, `FROM t`, `VALUES`,
`SUMMARIZE` and `DESCRIBE` are SELECTs too) and refuses every other kind (COPY, EXPLAIN
ANALYZE, CREATE, INSERT, ATTACH, PRAGMA, SET, CALL, EXPORT...). It then caps the rows
returned and interrupts the query after a timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 30.0
MEMORY_LIMIT = "2GB"


class QueryRefused(ValueError):
    """The statement is not a single read-only query, or it was stopped; the message says why."""


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table  # at most max_rows rows
    truncated: bool  # the query had more rows than max_rows


def lock_down(con: duckdb.DuckDBPyConnection, lake: Path) -> None:
    """Make `con` read-only: lake files only, no extensions, no settings changes."""
    folder = str(lake.resolve()).rstrip("/") + "/"
    con.execute("SET allowed_directories = [?]", [folder])
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """QueryRefused unless `sql` is exactly one SELECT statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement at a time, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(f"only SELECT queries may run here, not {kind.name}")


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Run one user query on a locked-down connection; QueryRefused with a reason otherwise."""
    check_statement(con, sql)
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        table = con.sql(sql).limit(max_rows + 1).to_arrow_table()
    except duckdb.InterruptException:
        raise QueryRefused(f"the query ran longer than {timeout_s:g} s and was stopped") from None
    except duckdb.Error as exc:
        if not timer.is_alive():
            raise QueryRefused(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        raise QueryRefused(str(exc).splitlines()[0]) from None
    finally:
        timer.cancel()
    return QueryResult(table=table.slice(0, max_rows), truncated=table.num_rows > max_rows)
