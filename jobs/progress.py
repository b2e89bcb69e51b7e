"""Each micro-batch's progress: a status line in the log and a JSON line in `<lake>/_progress/`.

`lake/_progress/date=YYYY-MM-DD/<query>.ndjson`, one object per batch (`PROGRESS_FIELDS`), read
by the dashboard, the benchmarks and `lake.connect()` (view `progress`). Only a local lake
path gets these files; for a remote one (s3a://...) the log line is all there is.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from core.schema import PROGRESS_FIELDS

log = logging.getLogger(__name__)


def _kafka_offsets(text: Any) -> dict[tuple[str, str], int] | None:
    try:
        parsed = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    try:
        return {(t, part): int(o) for t, parts in parsed.items() for part, o in parts.items()}
    except (AttributeError, TypeError, ValueError):
        return None


def records_read(p: Any) -> int:
    """Records the batch took from its sources: for Kafka, the offsets it moved over.

    Spark counts `numInputRows` once per plan branch that scans a source: the job reads the
    trades topic once (`jobs.trades.read_once`) but the small feed-events topic in two
    branches (feed events and rejects). The offsets count each record once.
    """
    total = 0
    for source in p.sources or []:
        # A query's first batch has no start offset (pyspark hands it over as the text "None").
        first = source.startOffset in (None, "None", "null")
        start, end = _kafka_offsets(source.startOffset), _kafka_offsets(source.endOffset)
        if end is None or (not first and start is None):
            return int(p.numInputRows)
        total += sum(o - (start or {}).get(key, 0) for key, o in end.items())
    return total if p.sources else int(p.numInputRows)


def progress_record(p: Any, late_in_sink: int = 0) -> dict[str, Any]:
    """The fields of one StreamingQueryProgress that operators look at.

    `late_in_sink`: trades the sink found late (`jobs.bar_closer`), counted with Spark's.
    """
    operators = list(p.stateOperators or [])
    record = {
        "query": p.name,
        "batch_id": p.batchId,
        "timestamp": p.timestamp,
        "input_rows": records_read(p),
        "input_rows_per_s": p.inputRowsPerSecond or 0.0,
        "processed_rows_per_s": p.processedRowsPerSecond or 0.0,
        "batch_duration_ms": (p.durationMs or {}).get("triggerExecution"),
        "watermark": (p.eventTime or {}).get("watermark"),
        "state_rows": sum(op.numRowsTotal for op in operators),
        "state_memory_bytes": sum(op.memoryUsedBytes for op in operators),
        "rows_dropped_by_watermark": sum(op.numRowsDroppedByWatermark for op in operators) + late_in_sink,
        "duplicates_dropped": sum(int((op.customMetrics or {}).get("numDroppedDuplicateRows", 0)) for op in operators),
        "sources": [
            {"description": s.description, "end_offset": s.endOffset, "input_rows": s.numInputRows}
            for s in (p.sources or [])
        ],
    }
    assert set(record) == set(PROGRESS_FIELDS), "keep core.schema.PROGRESS_FIELDS in step"
    return record


class ProgressListener(StreamingQueryListener):
    def __init__(self, lake_path: str, late_in_sink: Callable[[int], int] | None = None) -> None:
        """`late_in_sink(batch_id)`: the late trades the job's sink found in that batch."""
        self.directory = None if "://" in lake_path else Path(lake_path) / "_progress"
        self.late_in_sink = late_in_sink
        self._lock = threading.Lock()

    def onQueryStarted(self, event: Any) -> None:
        log.info("query started name=%s id=%s", event.name, event.id)

    def onQueryProgress(self, event: Any) -> None:
        late = self.late_in_sink(event.progress.batchId) if self.late_in_sink else 0
        record = progress_record(event.progress, late)
        durations = event.progress.durationMs or {}
        log.info(
            "query=%s batch=%d input_rows=%d processed_rps=%.0f watermark=%s state_rows=%d late=%d dups=%d ms=%s",
            record["query"],
            record["batch_id"],
            record["input_rows"],
            record["processed_rows_per_s"],
            record["watermark"] or "-",
            record["state_rows"],
            record["rows_dropped_by_watermark"],
            record["duplicates_dropped"],
            ",".join(f"{k}:{v}" for k, v in sorted(durations.items())),
        )
        if self.directory is None:
            return
        folder = self.directory / f"date={record['timestamp'][:10]}"
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"{record['query']}.ndjson").open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, separators=(",", ":")) + "\n")

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("query terminated id=%s exception=%s", event.id, event.exception)


def drain_events(spark: Any, timeout_ms: int = 10_000) -> None:
    """Wait until the listener has handled every event already posted.

    Spark delivers progress events to listeners on its own thread, after the batch: a query
    that has terminated may still have its last progress on the way to `lake/_progress`.
    """
    spark._jsparkSession.sparkContext().listenerBus().waitUntilEmpty(timeout_ms)
