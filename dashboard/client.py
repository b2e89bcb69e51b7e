"""The dashboard's only way into the lake: a read-only `lake.connect()` connection.

`lake.connect()` takes a snapshot of the committed files, so the connection is rebuilt every
`VIEW_REFRESH_S` seconds to pick up new micro-batches. Each query runs on its own cursor:
Streamlit serves sessions from several threads, and a DuckDB connection is not meant to be
shared between threads, while cursors of one connection are.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
import streamlit as st

import lake
from lake.sandbox import QueryResult, run_query

VIEW_REFRESH_S = 2.0


@st.cache_resource(ttl=VIEW_REFRESH_S, max_entries=4, show_spinner=False)
def _connection(lake_path: str) -> duckdb.DuckDBPyConnection:
    return lake.connect(lake_path)


def frame(lake_path: str, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run parameterized SQL (never user text pasted in) and return a DataFrame."""
    cursor = _connection(lake_path).cursor()
    try:
        table = cursor.sql(sql, params=params or None).to_arrow_table()
    finally:
        cursor.close()
    return table.to_pandas()


def user_query(lake_path: str, sql: str, max_rows: int, timeout_s: float) -> QueryResult:
    """SQL typed by a person: `lake.sandbox` rules (one SELECT, row cap, timeout)."""
    cursor = _connection(lake_path).cursor()
    try:
        return run_query(cursor, sql, max_rows=max_rows, timeout_s=timeout_s)
    finally:
        cursor.close()
