"""A status line per micro-batch, so a running job shows what it is doing."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger("jobs.progress")


class LoggingProgressListener(StreamingQueryListener):
    def onQueryStarted(self, event: Any) -> None:
        log.info("query started name=%s id=%s", event.name, event.id)

    def onQueryProgress(self, event: Any) -> None:
        p = event.progress
        log.info(
            "query=%s batch=%d input_rows=%d input_rps=%.0f processed_rps=%.0f watermark=%s state_rows=%s",
            p.name,
            p.batchId,
            p.numInputRows,
            p.inputRowsPerSecond or 0.0,
            p.processedRowsPerSecond or 0.0,
            p.eventTime.get("watermark", "-"),
            sum(op.numRowsTotal for op in p.stateOperators) if p.stateOperators else 0,
        )

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("query terminated id=%s exception=%s", event.id, event.exception)
