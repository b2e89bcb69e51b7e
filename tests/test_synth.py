"""Synthetic trades: the asked-for rate, bursty arrivals, prices on the tick, reproducible."""

from __future__ import annotations

from decimal import Decimal
from statistics import mean, pvariance

from core.trade import Trade
from ingest.synth import LOT, TICK, synth_trades


def test_rate_burstiness_ticks_and_seed() -> None:
    # 3000 s span ~150 burst/calm cycles, so the count is within ~10% of rate x duration.
    trades = list(synth_trades(100, 4, start_ms=1_800_000_000_000, duration_s=3000, seed=3))
    assert 0.9 * 300_000 <= len(trades) <= 1.1 * 300_000
    per_100ms = [0] * 30_000
    for t in trades:
        per_100ms[(t["timestamp"] - 1_800_000_000_000) // 100] += 1
    # Poisson arrivals would give variance == mean; bursts make it much larger.
    assert pvariance(per_100ms) > 3 * mean(per_100ms)
    parsed = [Trade.from_dict(t) for t in trades]
    assert all(p.price > 0 and p.price % TICK == 0 and p.quantity >= LOT and p.quantity % LOT == 0 for p in parsed)
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    for symbol in {p.symbol for p in parsed}:
        ids = [p.trade_id for p in parsed if p.symbol == symbol]
        assert ids == list(range(1, len(ids) + 1))
    assert list(synth_trades(1000, 4, start_ms=0, count=50, seed=3)) == list(
        synth_trades(1000, 4, start_ms=0, count=50, seed=3)
    )
    assert Decimal(trades[-1]["price"]) != Decimal(trades[0]["price"])
