"""Raw frames -> trades with each venue's decoder (the one live and replay share), against
`json.loads` alone on the same frames: the floor any decoder of these JSON frames pays.

    .venv/bin/python bench/decode.py [--frames 200000] [--rounds 3]

Frames are each venue's real recordings in tests/data, repeated up to --frames. Per venue:
frames/s and trades/s of `ingest.frames.FrameDecoder` (dead letters included, as replay counts
them), the same for `json.loads`, and the ratio (decoder time / json.loads time), median of
the rounds. No broker: this is the CPU cost of decoding only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import orjson

from core.settings import REPO_ROOT
from ingest.captures import read_cryptofeed_jsonl, read_cryptofeed_raw, read_hftbacktest
from ingest.errors import BadMessage
from ingest.frames import FrameDecoder

DATA = REPO_ROOT / "tests" / "data"
SOURCES: dict[str, tuple[str, Callable[[], list[str]]]] = {
    "binance": ("binance", lambda: [t for _ts, t in read_hftbacktest(DATA / "binance" / "btcusdt_20240808.gz")]),
    "coinbase (Exchange feed)": (
        "coinbase", lambda: [t for _ts, t in read_cryptofeed_raw(DATA / "coinbase" / "COINBASE.ws.28.0")]
    ),
    "coinbase (Advanced Trade)": (
        "coinbase", lambda: [t for _ts, t in read_cryptofeed_jsonl(DATA / "coinbase" / "COINBASE.jsonl.zst")]
    ),
    "okx": ("okx", lambda: [t for _ts, t in read_cryptofeed_raw(DATA / "okx" / "OKX.ws.1.0")]),
}  # fmt: skip


def _decode(exchange: str, frames: list[str]) -> tuple[float, int, int]:
    decoder = FrameDecoder()
    trades = bad = 0
    started = time.perf_counter()
    for text in frames:
        try:
            trades += len(decoder.trades(exchange, text, 0))
        except BadMessage:
            bad += 1
    return time.perf_counter() - started, trades, bad


def _json_only(frames: list[str]) -> float:
    started = time.perf_counter()
    for text in frames:
        orjson.loads(text)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'venue':28} {'frames/s':>10} {'trades/s':>10} {'dead':>6} {'orjson frames/s':>16} {'ratio':>6}")
    for name, (exchange, load) in SOURCES.items():
        sample = load()
        frames = (sample * (args.frames // len(sample) + 1))[: args.frames]
        decode_s, json_s = [], []
        trades = bad = 0
        for _ in range(args.rounds):
            seconds, trades, bad = _decode(exchange, frames)
            decode_s.append(seconds)
            json_s.append(_json_only(frames))
        d, j = statistics.median(decode_s), statistics.median(json_s)
        rates = f"{len(frames) / d:>10,.0f} {trades / d:>10,.0f} {bad:>6} {len(frames) / j:>16,.0f}"
        print(f"{name:28} {rates} {d / j:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
