"""The lake: settings, schemas and the DuckDB reader shared by every part of the project."""

from lake.reader import connect

__all__ = ["connect"]
