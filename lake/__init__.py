"""The lake: settings, schemas and the DuckDB reader shared by every part of the project.

`lake.connect` is imported on first use, so the ingestor, the stream job and its Python
workers, which use only the shared core (settings, schemas, the writer), never load DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lake.reader import connect

__all__ = ["connect"]


def __getattr__(name: str) -> Any:
    if name == "connect":
        from lake.reader import connect

        return connect
    raise AttributeError(f"module 'lake' has no attribute {name!r}")
