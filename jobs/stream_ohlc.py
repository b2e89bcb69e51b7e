"""Kafka trades -> 1-second OHLCV bars; feed events -> feed_events; what fails either -> rejects.

    SPARK_CONF_DIR=$PWD spark-submit jobs/stream_ohlc.py \
        [--bootstrap-servers 127.0.0.1:9092] [--topic crypto.trades] [--feed-events-topic crypto.feed_events] \
        [--lake lake] [--checkpoints checkpoints] \
        [--trigger available-now|"5 seconds"] [--watermark "5 seconds"]

Defaults come from `lake.settings` (env vars KAFKA_BOOTSTRAP_SERVERS,
KAFKA_TOPIC, LAKE_PATH, CHECKPOINT_PATH, STREAM_TRIGGER, STREAM_WATERMARK).
Each output table has its own checkpoint folder under --checkpoints.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from jobs.bars import one_second_bars, unique_trades
from jobs.feed_events import accepted_feed_events, parse_feed_events
from jobs.progress import LoggingProgressListener
from jobs.session import MissingSparkDefaults, spark_session
from jobs.trades import accepted, parse, rejected
from lake import logs
from lake.schema import PARTITION_COLUMNS
from lake.settings import Settings, load

log = logging.getLogger("jobs.stream_ohlc")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_ohlc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers")
    parser.add_argument("--topic", dest="kafka_topic")
    parser.add_argument("--feed-events-topic", dest="kafka_feed_events_topic")
    parser.add_argument("--lake", dest="lake_path")
    parser.add_argument("--checkpoints", dest="checkpoint_path")
    parser.add_argument("--trigger", dest="stream_trigger", help='"available-now" or an interval, e.g. "5 seconds"')
    parser.add_argument("--watermark", dest="stream_watermark", help='e.g. "5 seconds"')
    parser.add_argument("--starting-offsets", dest="stream_starting_offsets", help="earliest | latest | JSON")
    parser.add_argument("--max-offsets-per-trigger", dest="stream_max_offsets_per_trigger", type=int)
    return parser.parse_args(argv)


def kafka_source(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", settings.stream_starting_offsets)
    )
    if settings.stream_max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", settings.stream_max_offsets_per_trigger)
    return reader.load()


def _sink(frame: DataFrame, table: str, settings: Settings) -> DataStreamWriter:
    partitions = list(PARTITION_COLUMNS[table])
    writer = (
        # One file per table partition per batch instead of one per task.
        frame.repartition(*partitions)
        .writeStream.format("parquet")
        .queryName(table)
        .outputMode("append")
        .partitionBy(*partitions)
        .option("path", f"{settings.lake_path.rstrip('/')}/{table}")
        .option("checkpointLocation", f"{settings.checkpoint_path.rstrip('/')}/{table}")
    )
    if settings.stream_trigger == "available-now":
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=settings.stream_trigger)


def start_queries(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    events = parse(kafka_source(spark, settings, settings.kafka_topic))
    trades = accepted(events).withWatermark("event_time", settings.stream_watermark)
    bars = one_second_bars(unique_trades(trades))
    feed = parse_feed_events(kafka_source(spark, settings, settings.kafka_feed_events_topic))
    return [
        _sink(bars, "ohlc", settings).start(),
        _sink(rejected(events).unionByName(rejected(feed)), "rejects", settings).start(),
        _sink(accepted_feed_events(feed), "feed_events", settings).start(),
    ]


def run(settings: Settings) -> None:
    spark = spark_session("stream_ohlc")
    spark.streams.addListener(LoggingProgressListener())
    log.info(
        "starting topic=%s bootstrap=%s lake=%s checkpoints=%s trigger=%s watermark=%s",
        settings.kafka_topic,
        settings.kafka_bootstrap_servers,
        settings.lake_path,
        settings.checkpoint_path,
        settings.stream_trigger,
        settings.stream_watermark,
    )
    try:
        queries = start_queries(spark, settings)
    except AnalysisException as exc:
        if "kafka" in str(exc).lower() and "data source" in str(exc).lower():
            raise SystemExit(f"the Kafka connector is not on the classpath (spark.jars.packages): {exc}") from exc
        raise
    try:
        if settings.stream_trigger == "available-now":
            for query in queries:
                query.awaitTermination()
        else:
            spark.streams.awaitAnyTermination()
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
    for query in queries:
        if query.exception() is not None:
            raise SystemExit(f"query {query.name} failed: {query.exception()}")
    log.info("all queries finished")


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load(**vars(args))
    except ValidationError as exc:
        print(f"stream_ohlc: bad settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        run(settings)
    except MissingSparkDefaults as exc:
        print(f"stream_ohlc: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
