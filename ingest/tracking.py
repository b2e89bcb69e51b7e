"""Per-instrument trade-id bookkeeping: duplicates dropped, gaps found, late fills accepted.

Both venues number each instrument's trades with increasing integers, so the
state per instrument is the highest id seen plus the ranges still missing below
it. Memory is bounded by the number of open gaps (capped), not by the number of
trades: a reconnect that replays the last N trades costs nothing to remember.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gap:
    first: int  # first missing id
    last: int  # last missing id

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Seen:
    duplicate: bool = False
    gap: Gap | None = None  # ids newly found missing below this one
    filled: bool = False  # this id was one of a gap's missing ids


@dataclass
class _Instrument:
    high: int
    gaps: list[list[int]] = field(default_factory=list)  # sorted, disjoint [first, last]


class TradeIdTracker:
    def __init__(self, max_open_gaps: int = 1000) -> None:
        self.max_open_gaps = max_open_gaps
        self._instruments: dict[str, _Instrument] = {}
        self.expired_gaps = 0

    def high(self, instrument: str) -> int | None:
        state = self._instruments.get(instrument)
        return state.high if state else None

    def open_gaps(self, instrument: str) -> list[Gap]:
        state = self._instruments.get(instrument)
        return [Gap(a, b) for a, b in state.gaps] if state else []

    def observe(self, instrument: str, trade_id: int, first_id: int | None = None) -> Seen:
        """Trade `trade_id` received; `first_id` when it stands for the ids first_id..trade_id (aggregated)."""
        first = trade_id if first_id is None else min(first_id, trade_id)
        state = self._instruments.get(instrument)
        if state is None:
            self._instruments[instrument] = _Instrument(high=trade_id)
            return Seen()
        if first <= state.high + 1 <= trade_id:
            state.high = trade_id
            return Seen()
        if trade_id > state.high:
            gap = Gap(state.high + 1, first - 1)
            state.high = trade_id
            self._open(instrument, state, gap)
            return Seen(gap=gap)
        if self._fill(state, trade_id):
            return Seen(filled=True)
        return Seen(duplicate=True)

    def expect(self, instrument: str, last_id: int) -> Gap | None:
        """The venue says its last trade is `last_id`: ids above our high up to it are missing."""
        state = self._instruments.get(instrument)
        if state is None or last_id <= state.high:
            return None
        gap = Gap(state.high + 1, last_id)
        state.high = last_id
        self._open(instrument, state, gap)
        return gap

    def _open(self, instrument: str, state: _Instrument, gap: Gap) -> None:
        state.gaps.append([gap.first, gap.last])  # above every open gap, so the list stays sorted
        if len(state.gaps) > self.max_open_gaps:
            first, last = state.gaps.pop(0)
            self.expired_gaps += 1
            # Ids from here on below the oldest open gap count as duplicates.
            log.warning("gap no longer tracked instrument=%s ids=%d..%d (max_open_gaps)", instrument, first, last)

    @staticmethod
    def _fill(state: _Instrument, trade_id: int) -> bool:
        i = bisect.bisect_right(state.gaps, trade_id, key=lambda gap: gap[0]) - 1
        if i < 0:
            return False
        first, last = state.gaps[i]
        if not first <= trade_id <= last:
            return False
        pieces = [p for p in ([first, trade_id - 1], [trade_id + 1, last]) if p[0] <= p[1]]
        state.gaps[i : i + 1] = pieces
        return True
