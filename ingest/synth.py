"""Synthetic trades for load tests: random-walk prices and bursty arrivals.

Arrivals are a Poisson process whose rate switches between a calm and a burst
regime (a two-state Markov chain), so the mean rate is `rate` while short
bursts run several times faster, as real tapes do around news. Prices move by
whole ticks (log-normal steps, about 1 bp each), quantities are log-normal and
rounded to the lot size. Everything is reproducible from the seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from core.trade import Trade

EXCHANGE = "synth"
TICK = Decimal("0.01")
LOT = Decimal("0.000001")
BURST_FACTOR = 5.0
BURST_SHARE = 0.1  # of the time spent in bursts
MEAN_REGIME_S = 2.0  # mean length of a burst; calm spells are longer in proportion


def synth_trades(
    rate: float,
    symbols: int,
    *,
    start_ms: int,
    count: int | None = None,
    duration_s: float | None = None,
    seed: int = 7,
) -> Iterator[dict[str, Any]]:
    """Trade records with timestamps from `start_ms`; `ingest_ts` equals the trade time."""
    if rate <= 0 or symbols <= 0:
        raise ValueError("rate and symbols must be positive")
    if count is None and duration_s is None:
        raise ValueError("give count or duration_s")
    rng = random.Random(seed)
    # Rates so that the time-weighted mean is `rate`.
    calm_rate = rate / (1 - BURST_SHARE + BURST_SHARE * BURST_FACTOR)
    rates = (calm_rate, calm_rate * BURST_FACTOR)
    mean_spell = (MEAN_REGIME_S * (1 - BURST_SHARE) / BURST_SHARE, MEAN_REGIME_S)
    names = [f"SYN{i}USD" for i in range(symbols)]
    prices = [Decimal(100 + 10 * i) for i in range(symbols)]
    next_id = [1] * symbols
    t = 0.0
    burst = False
    regime_end = rng.expovariate(1 / mean_spell[0])
    produced = 0
    while count is None or produced < count:
        t += rng.expovariate(rates[burst])
        if duration_s is not None and t >= duration_s:
            break
        while t >= regime_end:
            burst = not burst
            regime_end += rng.expovariate(1 / mean_spell[burst])
        i = rng.randrange(symbols)
        step = round(rng.gauss(0, 1) * float(prices[i]) * 1e-4 / float(TICK))
        prices[i] = max(TICK, prices[i] + step * TICK)
        quantity = max(LOT, Decimal(str(math.exp(rng.gauss(-4, 1.2)))).quantize(LOT))
        ts = start_ms + int(t * 1000)
        trade = Trade(EXCHANGE, names[i], prices[i], quantity, ts, next_id[i], rng.random() < 0.5, ingest_ts=ts)
        next_id[i] += 1
        produced += 1
        yield trade.to_dict()
