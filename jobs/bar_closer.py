"""Final 1-second bars, released in the micro-batch whose data closes them.

Pure logic, no I/O: `jobs.lake_sink` feeds it each batch of the bars query's update-mode
output and writes what it returns to lake/ohlc.

Spark's append mode writes a window one micro-batch *after* the batch whose data moved the
watermark past it: a batch's watermark is taken from the batches before it. So the job runs
its bars in update mode, where each batch hands over every window it changed (the window's
whole aggregate so far, with its newest trade's time and Kafka partition) and the accepted
heartbeats. This module keeps the newest version of every open window and releases it,
final, as soon as the watermark reaches its end:

- the watermark is taken per Kafka partition, this batch included: the oldest of the newest
  event times of the partitions in the batch, or the newest heartbeat if later, minus the
  delay (`BarCloser._advance`). It never moves back and never passes Spark's own (the
  newest event time of all), so a partition read behind another makes no trade late;
- a window is final once its end is at or before the watermark, and is released once;
- a trade at or before the watermark as it stood when its batch began is late, as in
  `jobs.forming_bars` (the live bars): Spark's own filter already drops most of those
  (it compares with a watermark one batch older); the rest reach this module as updates
  of windows it has already released, and are counted here as late, never written.

Why that is all of them: Spark evicts a window from its state in the batch after the one
that closed it, and from then on its filter drops every trade of it. So a released window
can change only in the very next batch, and the change's trade count, less the count
released, is the number of late trades (all of the count, if Spark had no state left).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# The update rows' extra columns: the window's newest trade time and that trade's Kafka partition.
LAST_EVENT_TIME = "last_event_time"
LAST_PARTITION = "last_partition"

Key = tuple[str, str, int]  # exchange, symbol, window_start in epoch µs


def _micros(column: pa.ChunkedArray | pa.Array) -> list[int]:
    return pc.cast(column, pa.int64()).to_pylist()


def _keys(bars: pa.Table) -> list[Key]:
    return list(
        zip(bars["exchange"].to_pylist(), bars["symbol"].to_pylist(), _micros(bars["window_start"]), strict=True)
    )


@dataclass
class Released:
    final: pa.Table  # the windows this batch closed, without LAST_EVENT_TIME
    late_trades: int  # trades of windows released before this batch, not written


@dataclass
class BarCloser:
    """Every open window's newest version and the watermark, carried from batch to batch."""

    delay_ms: int
    newest_us: dict[int, int] = field(default_factory=dict)  # Kafka partition -> newest event time, epoch µs
    heartbeat_us: int | None = None  # newest heartbeat time, epoch µs
    floor_us: int | None = None  # the watermark so far: it never moves back
    open: pa.Table | None = None  # open windows' newest versions (the bars' columns)
    just_closed: dict[Key, int] = field(default_factory=dict)  # released by the last batch: trade counts
    # windows with late trades that are still open here: revised once released (`jobs.revisions`)
    pending: set[Key] = field(default_factory=set)

    def apply(self, updates: pa.Table, heartbeats: pa.Table) -> Released:
        """One batch's changed windows (with LAST_EVENT_TIME and LAST_PARTITION) and its accepted
        heartbeats (kafka_partition, event_time) -> the windows it closes."""
        before = self.floor_us
        bars = updates.drop_columns([LAST_EVENT_TIME, LAST_PARTITION])
        keys = _keys(bars)
        ends = _micros(bars["window_end"])
        late_rows = [before is not None and end <= before for end in ends]
        late = 0
        for key, count, is_late in zip(keys, bars["trade_count"].to_pylist(), late_rows, strict=True):
            if is_late:
                released = self.just_closed.get(key)
                late += count - released if released is not None and count >= released else count
        self._advance(updates, heartbeats)
        on_time = bars.filter(pa.array([not x for x in late_rows], pa.bool_()))
        changed = set(_keys(on_time))
        if self.open is not None and self.open.num_rows:
            kept = self.open.filter(pa.array([k not in changed for k in _keys(self.open)], pa.bool_()))
            merged = pa.concat_tables([kept, on_time.cast(kept.schema)])
        else:
            merged = on_time
        after = self.floor_us
        closing = pa.array([after is not None and end <= after for end in _micros(merged["window_end"])], pa.bool_())
        final = merged.filter(closing)
        self.open = merged.filter(pc.invert(closing))
        self.just_closed = dict(zip(_keys(final), final["trade_count"].to_pylist(), strict=True))
        return Released(final, late)

    def _advance(self, updates: pa.Table, heartbeats: pa.Table) -> None:
        """Move the watermark to the newer of: the oldest of the newest event times of the
        partitions in this batch, and the newest heartbeat (a venue's word that it has
        nothing older to send), less the delay.

        A partition's newest time is taken from the windows this batch changed (their newest
        trade) and its heartbeats. With every symbol in one partition (the ingestor keys by
        symbol) that is exact; a window fed by two partitions only holds the watermark back.
        """
        times = pa.concat_tables(
            [
                updates.select([LAST_PARTITION, LAST_EVENT_TIME]).rename_columns(["kafka_partition", "event_time"]),
                heartbeats.select(["kafka_partition", "event_time"]).cast(
                    pa.schema([("kafka_partition", updates.schema.field(LAST_PARTITION).type),
                               ("event_time", updates.schema.field(LAST_EVENT_TIME).type)])
                ),
            ]
        )  # fmt: skip
        if not times.num_rows:
            return
        newest = times.group_by("kafka_partition").aggregate([("event_time", "max")])
        for partition, t in zip(newest["kafka_partition"].to_pylist(), _micros(newest["event_time_max"]), strict=True):
            if t is not None:
                self.newest_us[partition] = max(t, self.newest_us.get(partition, t))
        beats = [t for t in _micros(heartbeats["event_time"]) if t is not None]
        if beats:
            self.heartbeat_us = max(beats if self.heartbeat_us is None else [self.heartbeat_us, *beats])
        present = [self.newest_us[p] for p in newest["kafka_partition"].to_pylist() if p in self.newest_us]
        candidates = [t for t in (min(present, default=None), self.heartbeat_us) if t is not None]
        if candidates:
            moved = max(candidates) - self.delay_ms * 1000
            self.floor_us = moved if self.floor_us is None else max(moved, self.floor_us)

    def to_json(self) -> dict[str, Any]:
        """The closer without its open windows (saved beside it as Arrow, exact)."""
        return {
            "newest_us": sorted(self.newest_us.items()),
            "heartbeat_us": self.heartbeat_us,
            "floor_us": self.floor_us,
            "just_closed": [[*key, count] for key, count in sorted(self.just_closed.items())],
            "pending": [list(key) for key in sorted(self.pending)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], open_windows: pa.Table | None, delay_ms: int) -> BarCloser:
        """`delay_ms` may differ from the saved closer's: the watermark goes on from where it was."""
        newest = {int(p): int(t) for p, t in data["newest_us"]}
        closed = {(e, s, int(t)): int(n) for e, s, t, n in data["just_closed"]}
        pending = {(e, s, int(t)) for e, s, t in data.get("pending", [])}
        return cls(delay_ms, newest, data["heartbeat_us"], data["floor_us"], open_windows, closed, pending)
