"""Raw captures of exchange feeds, as (receipt time in ms, raw JSON text) pairs.

Formats read (received frames only; what the client sent is skipped):
- hftbacktest: `<receive time ns> <json>` lines, gzip or plain;
- cryptofeed raw: a `URL <-> ts` header, `URL <- ts: {json}` sent, `ts: {json}` received;
- cryptofeed JSONL (zstd): `{"t": "recv", "ts": seconds, "data": "<raw json>"}` records.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import zstandard

from ingest.tape import open_text


def read_hftbacktest(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            stamp, sep, payload = line.rstrip("\n").partition(" ")
            if not sep or not stamp.isdigit():
                raise ValueError(f"{path}:{number}: not '<ns> <json>'")
            yield int(stamp) // 1_000_000, payload


def read_cryptofeed_raw(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            if not line or " <-> " in line or " <- " in line:
                continue  # the connection header, or a frame we sent
            stamp, sep, payload = line.partition(": ")
            try:
                received_ms = int(float(stamp) * 1000)
            except ValueError:
                raise ValueError(f"{path}:{number}: not '<ts>: <json>'") from None
            if not sep:
                raise ValueError(f"{path}:{number}: not '<ts>: <json>'")
            yield received_ms, payload


def read_cryptofeed_jsonl(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw) if path.suffix == ".zst" else raw
        for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), 1):
            record = json.loads(line)
            if record.get("t") != "recv":
                continue
            if not isinstance(record.get("data"), str):
                raise ValueError(f"{path}:{number}: recv record without string data")
            yield int(float(record["ts"]) * 1000), record["data"]
