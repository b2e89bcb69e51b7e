"""`GET /v1/health`: the parts, and one verdict. Pure: facts in, verdict out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.ages import format_age

JOB_QUERY = "ohlc"  # the stream job's query (jobs.stream_ohlc.QUERY); its batches carry every table
SHOWN = 5  # stale markets named in the reasons; the rest are counted


@dataclass(frozen=True)
class MarketAge:
    exchange: str
    symbol: str
    newest_end: dt.datetime
    age_s: float


def ages(newest_ends: dict[tuple[str, str], dt.datetime], now: dt.datetime) -> list[MarketAge]:
    rows = [MarketAge(e, s, end, (now - end).total_seconds()) for (e, s), end in newest_ends.items()]
    return sorted(rows, key=lambda m: (m.exchange, m.symbol))


def reasons(
    *,
    lake_error: str | None,
    markets: list[MarketAge],
    stale_after_s: float,
    job_batch_age_s: float | None,
    kafka_error: str | None,
    live_error: str | None,
) -> list[str]:
    """Why the system is not healthy, one line each; empty when every part is up and fresh."""
    out = []
    if lake_error:
        out.append(f"lake: {lake_error}")
    elif not markets:
        out.append("lake: it holds no bars yet")
    stale = [m for m in markets if m.age_s > stale_after_s]
    if stale:
        named = ", ".join(f"{m.exchange}:{m.symbol} {format_age(m.age_s)} ago" for m in stale[:SHOWN])
        more = f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
        out.append(f"stale (newest bar older than {stale_after_s:g} s): {named}{more}")
    if job_batch_age_s is None:
        out.append("stream job: no progress records in the lake")
    elif job_batch_age_s > stale_after_s:
        out.append(f"stream job: its newest batch started {format_age(job_batch_age_s)} ago")
    if kafka_error:
        out.append(f"kafka: {kafka_error}")
    if live_error:
        out.append(f"live bars: {live_error}")
    return out
