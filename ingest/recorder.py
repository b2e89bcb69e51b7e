"""Raw frames to gzip NDJSON files that rotate by size or age.

Each line: {"ts": receipt epoch ms, "exchange": "binance", "raw": "<frame text>"}.
A file is written as `<name>.ndjson.gz.part` and renamed when it is closed, so a
reader listing `*.ndjson.gz` never sees a file that is still being written.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        rotate_bytes: int = 64 * 1024 * 1024,
        rotate_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.clock = clock
        self.files: list[Path] = []  # closed, complete files
        self.lines = 0
        self._out: IO[str] | None = None
        self._path: Path | None = None
        self._bytes = 0
        self._opened_at = 0.0
        self._sequence = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, exchange: str, ts: int, raw: str) -> None:
        if self._out is None or self._due():
            self._rotate()
        assert self._out is not None
        line = json.dumps({"ts": ts, "exchange": exchange, "raw": raw}, separators=(",", ":")) + "\n"
        self._out.write(line)
        self._bytes += len(line)
        self.lines += 1

    def _due(self) -> bool:
        return self._bytes >= self.rotate_bytes or self.clock() - self._opened_at >= self.rotate_s

    def _rotate(self) -> None:
        self.close()
        self._sequence += 1
        stamp = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self._path = self.directory / f"{self.prefix}-{stamp}-{self._sequence:04d}.ndjson.gz"
        # Held open across writes on purpose; close() ends it.
        self._out = gzip.open(self._path.with_name(self._path.name + ".part"), "wt", encoding="utf-8")  # noqa: SIM115
        self._bytes = 0
        self._opened_at = self.clock()

    def close(self) -> None:
        if self._out is None or self._path is None:
            return
        self._out.close()
        self._path.with_name(self._path.name + ".part").rename(self._path)
        self.files.append(self._path)
        log.info("recording closed path=%s", self._path)
        self._out = None
