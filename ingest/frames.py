"""Raw recordings of any supported format -> (receipt ms, exchange, frame text) -> trade records.

Formats (`--format`, or detected from the file):
- `recording`: our own `python -m ingest record` files (`{"ts", "exchange", "raw"}` lines);
- `hftbacktest`: `<ns> <json>` lines of a Binance combined stream;
- `cryptofeed`: cryptofeed's raw capture (`URL <-> ts` header names the venue);
- `cryptofeed-jsonl`: cryptofeed's JSONL capture, zstd ok (its header record names the venue);
- `tape`: already normalized trade records (`python -m ingest normalize` output, the sample tape).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

from core.settings import Settings
from core.trade import Trade
from ingest.captures import read_cryptofeed_jsonl, read_cryptofeed_raw, read_hftbacktest
from ingest.errors import BadMessage
from ingest.tape import open_text
from ingest.venues import Venue, make_venue, venue_named_in

Frame = tuple[int, str, str]  # receipt epoch ms, exchange, raw text
FORMATS = ("tape", "recording", "hftbacktest", "cryptofeed", "cryptofeed-jsonl")


def _first_line(path: Path) -> str:
    if path.suffix == ".zst":
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
            return stream.read(64 * 1024).decode("utf-8", errors="replace").split("\n", 1)[0]
    with open_text(path) as lines:
        return next(iter(lines), "")


def detect_format(path: Path) -> str:
    line = _first_line(path).strip()
    head, _, rest = line.partition(" ")
    if head.isdigit() and rest.startswith("{"):
        return "hftbacktest"
    if " <-> " in line:
        return "cryptofeed"
    try:
        first = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError(f"{path}: cannot tell the format from its first line; pass --format") from None
    if isinstance(first, dict):
        if first.get("t") == "header":
            return "cryptofeed-jsonl"
        if "raw" in first and "exchange" in first:
            return "recording"
        if "exchange" in first and "timestamp" in first:
            return "tape"
    raise ValueError(f"{path}: cannot tell the format from its first line; pass --format")


def read_frames(path: Path, fmt: str) -> Iterator[Frame]:
    if fmt == "recording":
        with open_text(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not isinstance(record, dict) or not {"ts", "exchange", "raw"} <= set(record):
                    raise ValueError(f"{path}:{number}: not a recording line")
                yield int(record["ts"]), str(record["exchange"]), str(record["raw"])
    elif fmt == "hftbacktest":
        yield from ((ts, "binance", text) for ts, text in read_hftbacktest(path))
    elif fmt == "cryptofeed":
        exchange = venue_named_in(_first_line(path))
        yield from ((ts, exchange, text) for ts, text in read_cryptofeed_raw(path))
    elif fmt == "cryptofeed-jsonl":
        exchange = venue_named_in(_first_line(path))
        yield from ((ts, exchange, text) for ts, text in read_cryptofeed_jsonl(path))
    else:
        raise ValueError(f"{fmt!r} is not a raw frame format")


class FrameDecoder:
    """Raw frames of any registered venue, decoded by that venue's live decoder (`ingest.venues`).

    One venue object per exchange, as one live connection holds one: its symbol map applies, and
    a frame that live would dead-letter raises the same BadMessage here.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._venues: dict[str, Venue] = {}

    def trades(self, exchange: str, text: str, ingest_ts: int | None) -> list[Trade]:
        venue = self._venues.get(exchange)
        if venue is None:
            try:
                venue = self._venues[exchange] = make_venue(exchange, self.settings)
            except ValueError:
                raise BadMessage("unknown_exchange", exchange) from None
        return venue.decode(text, ingest_ts).trades


def frames_to_records(
    frames: Iterable[Frame], on_bad: Callable[[Frame, BadMessage], None], settings: Settings | None = None
) -> Iterator[dict[str, Any]]:
    """Trade records from raw frames; each bad frame goes to `on_bad` (the dead-letter topic)."""
    decoder = FrameDecoder(settings)
    for frame in frames:
        ts, exchange, text = frame
        try:
            trades = decoder.trades(exchange, text, ts)
        except BadMessage as exc:
            on_bad(frame, exc)
            continue
        # Snapshots list newest first; publish in id order.
        for trade in sorted(trades, key=lambda t: (t.symbol, t.trade_id)):
            yield trade.to_dict()
