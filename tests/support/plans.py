"""What DuckDB plans to read: the Parquet scans of a query's plan (`EXPLAIN (FORMAT json)`)."""

from __future__ import annotations

import json
from typing import Any

import duckdb


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    info = node.get("extra_info", {})
    own = [info] if isinstance(info, dict) and info.get("Function") == "READ_PARQUET" else []
    return own + [scan for child in node.get("children", []) for scan in _scans(child)]


def parquet_scans(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> list[dict[str, Any]]:
    """Each READ_PARQUET of the plan: its Projections, Filters, File Filters and 'Scanning Files: k/n'."""
    plan = con.execute(f"EXPLAIN (FORMAT json) {sql}", params).fetchall()[0][1]
    return [scan for root in json.loads(plan) for scan in _scans(root)]
