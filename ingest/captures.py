"""Raw captures of exchange feeds, as (receipt time in ms, raw JSON text) pairs.

Formats read:
- hftbacktest's `<receive time ns> <json>` lines (the Binance fixtures), gzip or plain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.tape import open_text


def read_hftbacktest(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            stamp, sep, payload = line.rstrip("\n").partition(" ")
            if not sep or not stamp.isdigit():
                raise ValueError(f"{path}:{number}: not '<ns> <json>'")
            yield int(stamp) // 1_000_000, payload
