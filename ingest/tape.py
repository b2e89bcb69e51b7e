"""Normalized tapes: NDJSON files of trade records, plain or gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def read_tape(path: Path) -> Iterator[dict[str, Any]]:
    """Each line's JSON object; a line that is not one raises with its number."""
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            yield record


def write_tape(path: Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with open_text(path, "wt") as out:
        for record in records:
            out.write(orjson.dumps(record).decode() + "\n")
            count += 1
    return count
