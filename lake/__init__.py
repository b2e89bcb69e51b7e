"""The lake: its Delta tables (`lake.delta`), their maintenance, and the DuckDB reader.

`lake.connect` is imported on first use, so the stream job and its Python workers, which
commit through `lake.delta`, never load DuckDB. Settings and schemas are in `core`.
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
