"""OKX live, against the fake exchange replaying the real OKX capture into the real local Kafka:
reconnects, repeats dropped, a skip reported as a gap and fetched over REST, keepalives."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from ingest.live import run_feed
from ingest.pipeline import Counters
from tests.support.exchange_data import okx_frames, okx_rest, trade_ids
from tests.support.fake_exchange import FakeExchange, Plan
from tests.support.kafka_helpers import fresh_topics
from tests.support.live_ingest import FAST, ids, ingest, published, ranges, serve

pytestmark = pytest.mark.integration


def _spot_trade_frames(frames: list[str]) -> list[int]:
    """Indexes of the frames that carry BTC-USDT trades."""
    return [i for i, f in enumerate(frames) if json.loads(f)["arg"] == {"channel": "trades", "instId": "BTC-USDT"}]


@pytest.mark.parametrize("backfill", [False, True], ids=["gaps-reported", "gaps-backfilled"])
def test_okx_reconnects_dedups_and_reports_or_fills_gaps(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange], backfill: bool
) -> None:
    frames = okx_frames()
    spot = _spot_trade_frames(frames)
    cut = spot[30]  # skip the frames from the 31st spot trade's to the 35th's
    skip = spot[35] - cut
    # The second connection repeats back to the first frame after the skip: duplicates, no fill.
    plans: list[Plan] = [[("send", cut), ("skip", skip), ("send", 40), ("drop",)], [("repeat", 40)]]
    fake = serve(exchange, "okx", frames, plans, rest_trades=okx_rest(frames))
    settings = fresh_topics(kafka, tmp_path, ingest_backfill=backfill, okx_rest_url=fake.rest_url, **FAST)
    counters = ingest(fake, settings, "okx", ["BTC-USDT"])

    trades, _beats, side = published(settings)
    skipped = trade_ids([frames[i] for i in spot if cut <= i < cut + skip], "okx")
    assert len(skipped) == 5
    every = trade_ids([frames[i] for i in spot], "okx")
    assert len(every) == 69
    assert ids(trades) == Counter(every if backfill else every - skipped)  # once each, repeats dropped
    assert counters.duplicates > 0 and counters.reconnects == 1
    gaps = {(e["symbol"], e["from_trade_id"], e["to_trade_id"]) for e in side if e.get("kind") == "gap"}
    assert gaps == ranges(skipped)
    if backfill:
        assert counters.backfilled == 5
        assert all(r.startswith("/api/v5/market/history-trades?") for r in fake.rest_requests)
    dead = Counter((d["reason"], d["detail"]) for d in side if "reason" in d)
    assert set(dead) <= {("not_spot_instrument", "BTC-USD-220527"), ("not_spot_instrument", "UNI-USD-SWAP")}
    assert [conn[0] for conn in fake.subscriptions] == [
        {"op": "subscribe", "args": [{"channel": "trades", "instId": "BTC-USDT"}]}
    ] * 2


def test_a_quiet_okx_feed_is_kept_open_by_keepalives(kafka: str, tmp_path: Path, exchange: list[FakeExchange]) -> None:
    """OKX sends no WebSocket pings and cuts a client silent for 30 s; our `ping` texts and its
    `pong`s keep the connection (and our watchdog) alive."""
    fake = serve(exchange, "okx", okx_frames()[:20], [[("send", 20), ("quiet", 3.0)]])
    settings = fresh_topics(kafka, tmp_path, **{**FAST, "ws_keepalive_after_s": 0.4, "ws_silence_timeout_s": 1.5})
    stop = threading.Event()
    result: list[Counters] = []
    thread = threading.Thread(
        target=lambda: result.append(run_feed("okx", ["BTC-USDT"], settings, stop, url=fake.ws_url))
    )
    thread.start()
    assert fake.quiet_over.wait(30)
    stop.set()
    thread.join(30)
    assert fake.keepalives >= 3  # ~one per 0.4 s of the 3 s without frames
    assert result and result[0].reconnects == 0 and fake.connections == 1
