"""Real recorded frames from tests/data, shaped for the fake exchange."""

from __future__ import annotations

import heapq
import json
from typing import Any

from core.trade import Trade
from ingest.captures import read_cryptofeed_jsonl, read_cryptofeed_raw, read_hftbacktest
from ingest.frames import FrameDecoder
from tests.support.data import DATA
from tests.support.fake_exchange import RestTrade


def binance_trade_frames(limit: int | None = None) -> list[str]:
    """`@trade` frames of the BTCUSDT and ETHUSDT capture, in receipt order."""
    streams = [read_hftbacktest(DATA / "binance" / f"{s}_20240808.gz") for s in ("btcusdt", "ethusdt")]
    frames = [text for _ts, text in heapq.merge(*streams) if '@trade"' in text]
    return frames[:limit]


def binance_rest(frames: list[str]) -> list[RestTrade]:
    rows = []
    for text in frames:
        d = json.loads(text)["data"]
        row = {
            "id": d["t"],
            "price": d["p"],
            "qty": d["q"],
            "time": d["T"],
            "isBuyerMaker": d["m"],
            "isBestMatch": True,
        }
        rows.append(RestTrade(d["s"], row, d["t"]))
    return rows


def coinbase_match_frames() -> list[str]:
    """The Exchange feed capture's frames after its subscribe replies: matches, tickers, snapshots."""
    frames = [text for _ts, text in read_cryptofeed_raw(DATA / "coinbase" / "COINBASE.ws.28.0")]
    return [f for f in frames if json.loads(f).get("type") != "subscriptions"]


def coinbase_rest(frames: list[str]) -> list[RestTrade]:
    rows = []
    for text in frames:
        m: dict[str, Any] = json.loads(text)
        if m.get("type") in ("match", "last_match"):
            row = {k: m[k] for k in ("time", "trade_id", "price", "size", "side")}
            rows.append(RestTrade(m["product_id"], row, m["trade_id"]))
    return rows


def coinbase_advanced_frames() -> list[str]:
    """The Advanced Trade capture's market_trades and heartbeats messages (what we subscribe to)."""
    frames = [text for _ts, text in read_cryptofeed_jsonl(DATA / "coinbase" / "COINBASE.jsonl.zst")]
    return [f for f in frames if json.loads(f).get("channel") in ("market_trades", "heartbeats")]


def okx_frames() -> list[str]:
    """The OKX capture's received frames after its subscribe replies: spot, futures and swap trades,
    tickers and books, as a connection subscribed to all of them received them."""
    frames = [text for _ts, text in read_cryptofeed_raw(DATA / "okx" / "OKX.ws.1.0")]
    return [f for f in frames if "event" not in json.loads(f)]


def okx_rest(frames: list[str]) -> list[RestTrade]:
    rows = []
    for text in frames:
        frame: dict[str, Any] = json.loads(text)
        if frame.get("arg", {}).get("channel") == "trades":
            rows.extend(RestTrade(r["instId"], r, int(r["tradeId"])) for r in frame["data"])
    return rows


def trade_ids(frames: list[str], exchange: str) -> set[tuple[str, int]]:
    """(canonical symbol, trade id) of every trade in `frames`."""
    from ingest.frames import FrameDecoder

    decoder = FrameDecoder()  # one, as replay uses: settings are read once, not per frame
    out: set[tuple[str, int]] = set()
    for text in frames:
        for trade in decoder.trades(exchange, text, None):
            out.add((trade.symbol, trade.trade_id))
    return out


def frame_trades(exchange: str, text: str, ingest_ts: int | None) -> list[Trade]:
    """The trades in one raw frame of `exchange` (default settings); BadMessage for a bad frame."""
    return FrameDecoder().trades(exchange, text, ingest_ts)
