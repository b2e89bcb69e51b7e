"""A gap backfilled over REST after its windows closed: the bars end as the full id range's.

Two real ingestors publish into one topic, from two fake exchanges replaying the same half-minute
of Binance trades: BTCUSDT on one, ETHUSDT on the other. The BTCUSDT exchange skips a run of
trade ids; the ingestor finds the gap at the next trade and asks the exchange's REST history
for the missing ones, and that answer is slow (held until the ETHUSDT ingestor is done). In
the meantime the ETHUSDT connection delivers its trades of those seconds and of the ones after.

Why two connections: one connection publishes a gap's backfill before the trade that revealed
it, and sends no heartbeats while it waits, so on its own it never moves the job's watermark
past a window it has not filled yet. The job's watermark is global, though: another connection
(or venue) that keeps flowing moves it on while this one waits for REST, and then the backfill
reaches the job after its windows were closed. That is what this test makes happen, in order.

The topic has one partition, so the job reads it in the order it was written, as a job running
all along would have; the job reads it in small micro-batches, so the ETHUSDT trades move the
watermark before the backfill comes. A closing heartbeat (the venue's clock going on) closes the
last seconds. The backfilled trades must then land in lake/trades marked late, revise their bars
(and the volatility after them) from there, and leave every bar and volatility row equal to the
reference over the full id range.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lake
from core.settings import Settings, interval_ms
from core.trade import heartbeat
from ingest import side_records
from ingest.pipeline import Counters
from ingest.producer import Publisher
from tests.support.exchange_data import binance_rest, binance_trade_frames, trade_ids
from tests.support.fake_exchange import FakeExchange
from tests.support.job import job_args, job_failure, run_job
from tests.support.kafka_helpers import consume, fresh_topics
from tests.support.lake_checks import assert_bars_and_volatility
from tests.support.live_ingest import FAST, ids, ingest, serve
from tests.support.reference import reference_bars

pytestmark = pytest.mark.integration

FRAMES = 1200  # both symbols' trades, ~34 s of the capture
BEFORE, SKIPPED = 100, 150  # BTCUSDT trades sent before the gap (~4 s), then skipped (~9 s)
BATCH = 150  # offsets per micro-batch: the ETHUSDT trades move the watermark ~10 s past the gap
REST_TIMEOUT_S = 10.0  # the ingestor's REST client gives up after this (`ingest.backfill.RestClient`)


def symbol(frame: str) -> str:
    return str(json.loads(frame)["data"]["s"])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout}s"
        time.sleep(0.02)


def ingest_in_background(
    fake: FakeExchange, settings: Settings, symbols: list[str]
) -> tuple[threading.Thread, dict[str, Any]]:
    """`ingest` in a thread, until the client has read every frame (the backfill may hold it up)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["counters"] = ingest(fake, settings, "binance", symbols, timeout=90, until=fake.caught_up.is_set)
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_trades_backfilled_after_their_windows_closed_revise_the_bars(
    kafka: str, tmp_path: Path, exchange: list[FakeExchange]
) -> None:
    frames = binance_trade_frames(FRAMES)
    btc = [f for f in frames if symbol(f) == "BTCUSDT"]
    gap_from = frames.index(btc[BEFORE - 1]) + 1  # where the gap begins, in the capture's order
    eth = [f for f in frames[gap_from:] if symbol(f) == "ETHUSDT"]  # the same seconds on, and more
    skipped = trade_ids(btc[BEFORE : BEFORE + SKIPPED], "binance")
    after = trade_ids(btc[BEFORE:], "binance")  # what BTCUSDT publishes once its REST answer came
    everything = trade_ids(btc, "binance") | trade_ids(eth, "binance")
    assert len(skipped) == SKIPPED and len(everything) == len(btc) + len(eth)

    rest_answers = threading.Event()
    btc_fake = serve(
        exchange, "binance", btc, [[("send", BEFORE), ("skip", SKIPPED)]],
        rest_trades=binance_rest(btc), rest_hold=rest_answers,
    )  # fmt: skip
    eth_fake = serve(exchange, "binance", eth, [])
    settings = fresh_topics(
        kafka, tmp_path, partitions=1, ingest_backfill=True, binance_rest_url=btc_fake.rest_url, **FAST
    )

    # BTCUSDT: its trades up to the gap, then the ingestor waits for the REST answer
    btc_thread, btc_run = ingest_in_background(btc_fake, settings, ["BTCUSDT"])
    wait_for(lambda: btc_fake.rest_requests or "error" in btc_run, 60, "REST backfill request")
    asked = time.monotonic()
    # meanwhile ETHUSDT's connection delivers every trade of its own, to the end
    eth_counters = ingest(eth_fake, settings.with_overrides(ingest_backfill=False), "binance", ["ETHUSDT"])
    held_s = time.monotonic() - asked
    rest_answers.set()  # now the backfill comes, then the rest of BTCUSDT
    btc_thread.join(120)
    if "error" in btc_run:
        raise btc_run["error"]
    assert not btc_thread.is_alive(), "the BTCUSDT ingestor did not finish"
    assert held_s < REST_TIMEOUT_S - 1, f"ETHUSDT took {held_s:.1f}s: the REST client may have given up"
    btc_counters: Counters = btc_run["counters"]
    assert (btc_counters.gaps, btc_counters.missing_ids, btc_counters.backfilled) == (1, SKIPPED, SKIPPED)
    assert (eth_counters.gaps, eth_counters.backfilled) == (0, 0)

    # On the topic: every trade once, and the backfill after every ETHUSDT trade.
    records = [r for r in consume(kafka, settings.kafka.topic) if r.value["type"] == "trade"]
    trades = [r.value for r in sorted(records, key=lambda r: r.offset)]
    assert ids(trades) == Counter(everything)
    offsets = {(r.value["symbol"], r.value["trade_id"]): r.offset for r in records}
    assert max(offsets[i] for i in trade_ids(eth, "binance")) < min(offsets[i] for i in skipped)
    # The venue's clock goes on: a heartbeat past the last trade lets the job close the last seconds.
    with Publisher(settings) as publisher:
        closing = max(t["timestamp"] for t in trades) + interval_ms(settings.stream.watermark) + 1000
        publisher.send(settings.kafka.topic, b"binance:heartbeat", side_records.to_json(heartbeat("binance", closing)))

    job = run_job(*job_args(kafka, settings, tmp_path / "lake", tmp_path / "checkpoints", max_offsets=BATCH))
    assert job.returncode == 0, job_failure(job)
    con = lake.connect(tmp_path / "lake")
    stored = Counter(con.sql("SELECT symbol, trade_id FROM trades").fetchall())
    assert stored == Counter(everything)  # the full id range, each once
    late = set(con.sql("SELECT symbol, trade_id FROM late").fetchall())
    # every backfilled trade came after the watermark had passed it; nothing published before
    # the stall is late (what BTCUSDT sent after its backfill may be, up to where ETHUSDT was)
    assert skipped <= late <= after, (len(skipped - late), len(late - after))
    revised = con.sql("SELECT symbol, count(*) FROM ohlc WHERE revision > 0 GROUP BY symbol").fetchall()
    assert [s for s, _ in revised] == ["BTCUSDT"] and revised[0][1] > 0
    # among them the bar of the second the gap began in: written from the trades before the gap
    # when ETHUSDT's trades closed it, then revised in place (a MERGE) by the backfill
    last_before = max(i for _, i in trade_ids(btc[:BEFORE], "binance"))
    merged = con.sql(
        "SELECT revision FROM ohlc WHERE symbol = 'BTCUSDT' AND first_trade_id <= $id AND last_trade_id > $id",
        params={"id": last_before},
    ).fetchall()
    assert len(merged) == 1 and merged[0][0] >= 1, merged
    assert_bars_and_volatility(con, reference_bars(trades))  # every bar as the full id range gives it
