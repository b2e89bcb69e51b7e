"""Read-only SQL typed by a person: the lake's views, and nothing else.

A connection from `lake.connect(read_only=True)` is locked down:
- file access is limited to the tables' own folders and `_progress` (`allowed_directories`:
  not the lake folder itself, which by default is also the `lake` code package) and then
  switched off for everything else (`enable_external_access = false`), so no other path can
  be read and nothing can be attached;
- extensions cannot be installed or loaded, and `lock_configuration` refuses every `SET`.

DuckDB still lets such a connection `COPY ... TO` a path *inside* the allowed folders, so
`run_query` also accepts only a single SELECT statement (a `WITH` query, `FROM t`, `VALUES`,
`SUMMARIZE` and `DESCRIBE` are SELECTs too) and refuses every other kind (COPY, EXPLAIN
ANALYZE, CREATE, INSERT, ATTACH, PRAGMA, SET, CALL, EXPORT...).

A user query sees table data only, through the views: `check_references` walks the parsed
statement (`json_serialize_sql`) and refuses a table that is not a view or a CTE of the query
(a quoted path such as `FROM 'lake/ohlc/x.parquet'` is one), a table function other than the
lake's macros and `range`/`generate_series`/`unnest` (so no `read_parquet`, `glob`,
`read_text`, `query` or `duckdb_settings()`), and the functions that reveal settings and paths
(`current_setting`, `getenv`, `duckdb_*`). So no file outside the views' committed files can
be read even inside the tables' folders (an orphan or a log file). It then caps the rows
returned and interrupts the query after a timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def lock_down(con: duckdb.DuckDBPyConnection, lake: Path, folders: Iterable[str]) -> None:
    """Make `con` read-only: files in the lake's `folders` (its tables') only, no extensions, no
    settings changes."""
    root = lake.resolve()
    allowed = [str(root / folder).rstrip("/") + "/" for folder in folders]
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """QueryRefused unless `sql` is exactly one SELECT statement over the views (`check_references`)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement at a time, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(f"only SELECT queries may run here, not {kind.name}")
    check_references(con, sql)


# Table functions a query may call: the lake's table macros (lake.macros) and generators.
TABLE_FUNCTIONS = frozenset({"candles", "realized_volatility", "range", "generate_series", "unnest"})
# Scalar functions that reveal the connection's settings (absolute paths among them) or the environment.
HIDDEN_FUNCTIONS = frozenset({"current_setting", "getenv", "getvariable", "version", "current_database"})
HIDDEN_PREFIXES = ("duckdb_", "pragma_")


@dataclass(frozen=True)
class References:
    tables: tuple[str, ...]  # names in FROM/JOIN: views, CTEs, or replacement scans ('path.csv')
    table_functions: tuple[str, ...]
    functions: tuple[str, ...]
    ctes: tuple[str, ...]
    shows: tuple[str, ...]  # SHOW <name> (SHOW TABLES: "tables")


def references(parsed: dict[str, Any]) -> References:
    """Every relation and function a parsed statement (`json_serialize_sql`'s output) names."""
    tables: list[str] = []
    table_functions: list[str] = []
    functions: list[str] = []
    ctes: list[str] = []
    shows: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "BASE_TABLE":
            schema = node.get("schema_name") or node.get("catalog_name")
            tables.append(f"{schema}.{node['table_name']}" if schema else str(node["table_name"]))
        elif kind == "TABLE_FUNCTION":
            table_functions.append(str(node["function"]["function_name"]))
        elif kind == "SHOW_REF" and node.get("query") is None:
            shows.append(str(node.get("table_name", "")).strip('"'))
        if node.get("class") == "FUNCTION":
            functions.append(str(node["function_name"]))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.extend(str(entry["key"]) for entry in cte_map.get("map", []))
        for value in node.values():
            walk(value)

    walk(parsed.get("statements", []))
    return References(tuple(tables), tuple(table_functions), tuple(functions), tuple(ctes), tuple(shows))


def check_references(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """QueryRefused unless the query reads only views (or its own CTEs) and calls no file,
    settings or catalog function."""
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    parsed = json.loads(row[0]) if row else {"error": True}
    if parsed.get("error"):
        raise QueryRefused(f"the query does not parse: {parsed.get('error_message', 'unknown error')}")
    refs = references(parsed)
    views = {
        name.lower() for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    known = views | {name.lower() for name in refs.ctes}
    for table in refs.tables:
        if table.lower() not in known:
            raise QueryRefused(
                f"only the lake's views can be read here, and {table!r} is not one (views: {', '.join(sorted(views))})"
            )
    for name in refs.table_functions:
        if name.lower() not in TABLE_FUNCTIONS:
            raise QueryRefused(
                f"table function {name}() is not allowed here: read the views "
                f"(table functions allowed: {', '.join(sorted(TABLE_FUNCTIONS))})"
            )
    for name in refs.functions:
        lowered = name.lower()
        if lowered in HIDDEN_FUNCTIONS or lowered.startswith(HIDDEN_PREFIXES):
            raise QueryRefused(f"function {name}() is not allowed here: it shows the server's settings or environment")
    for name in refs.shows:
        if name.lower() not in ("tables", "all_tables"):
            raise QueryRefused(f"SHOW {name} is not allowed here: only SHOW TABLES")


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
