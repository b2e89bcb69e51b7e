"""The baseline for bench/e2e.py: Spark reading the same topic and doing nothing else.

    spark-submit bench/spark_read_only.py BOOTSTRAP TOPIC MAX_OFFSETS_PER_TRIGGER CHECKPOINT

Same session settings as the job (spark-defaults.conf), Kafka source, `noop` sink,
available-now. Prints one line: `read_only rows=<n> seconds=<s>` (first batch start to
last batch end, from the query's own progress).
"""

from __future__ import annotations

import datetime as dt
import sys

from jobs.session import spark_session


def main() -> int:
    bootstrap, topic, max_offsets, checkpoint = sys.argv[1:5]
    spark = spark_session("bench-read-only")
    query = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", int(max_offsets))
        .load()
        .writeStream.format("noop")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
    start = min(dt.datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in batches)
    end = max(
        dt.datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00"))
        + dt.timedelta(milliseconds=p["durationMs"]["triggerExecution"])
        for p in batches
    )
    print(f"read_only rows={sum(p['numInputRows'] for p in batches)} seconds={(end - start).total_seconds():.3f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
