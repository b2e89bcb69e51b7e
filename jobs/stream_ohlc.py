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
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from jobs.bars import one_second_bars, unique_trades
from jobs.feed_events import accepted_feed_events, parse_feed_events
from jobs.progress import ProgressListener
from jobs.session import MissingSparkDefaults, spark_session
from jobs.trades import accepted, parse, rejected
from jobs.volatility import bar_volatility
from lake import logs
from lake.commit_log import committed_files
from lake.schema import OHLC, PARTITION_COLUMNS, to_spark
from lake.settings import Settings, load

log = logging.getLogger("jobs.stream_ohlc")

STATE_STORE_PROVIDER = "spark.sql.streaming.stateStore.providerClass"
KAFKA_STATE_STORE = "spark.lakehouse.kafkaStateStore"  # spark-defaults.conf: the Kafka queries' provider


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
    parser.add_argument(
        "--volatility-windows",
        dest="stream_volatility_windows_s",
        type=_windows,
        help="trailing windows in seconds, e.g. 60,300",
    )
    return parser.parse_args(argv)


def _windows(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 60,300, got {text!r}") from None


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


def _table_path(settings: Settings, table: str) -> str:
    return f"{settings.lake_path.rstrip('/')}/{table}"


def start_queries(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    """The three queries over Kafka: bars, rejects and feed events."""
    with state_store(spark, spark.conf.get(KAFKA_STATE_STORE, None)):
        return _start_kafka_queries(spark, settings)


def _start_kafka_queries(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    events = parse(kafka_source(spark, settings, settings.kafka_topic))
    trades = accepted(events).withWatermark("event_time", settings.stream_watermark)
    bars = one_second_bars(unique_trades(trades))
    feed = parse_feed_events(kafka_source(spark, settings, settings.kafka_feed_events_topic))
    return [
        _sink(bars, "ohlc", settings).start(),
        _sink(rejected(events).unionByName(rejected(feed)), "rejects", settings).start(),
        _sink(accepted_feed_events(feed), "feed_events", settings).start(),
    ]


@contextlib.contextmanager
def state_store(spark: SparkSession, provider: str | None) -> Iterator[None]:
    """Queries started inside use `provider` for their state (and keep it across restarts)."""
    if not provider:
        yield
        return
    previous = spark.conf.get(STATE_STORE_PROVIDER) or ""
    spark.conf.set(STATE_STORE_PROVIDER, provider)
    try:
        yield
    finally:
        spark.conf.set(STATE_STORE_PROVIDER, previous)


def start_volatility(spark: SparkSession, settings: Settings) -> StreamingQuery:
    """The fourth query: lake/ohlc (committed files only) -> lake/volatility."""
    ohlc = _table_path(settings, "ohlc")
    if "://" not in ohlc:
        Path(ohlc).mkdir(parents=True, exist_ok=True)  # the file source wants the folder to exist
    bars = spark.readStream.schema(to_spark(OHLC)).option("basePath", ohlc).parquet(ohlc)
    return _sink(bar_volatility(bars, settings.stream_volatility_windows_s), "volatility", settings).start()


def _bars_committed(settings: Settings) -> bool:
    """lake/ohlc has a committed batch (always assumed for a remote lake)."""
    ohlc = _table_path(settings, "ohlc")
    return "://" in ohlc or bool(committed_files(Path(ohlc)))


def _await(queries: list[StreamingQuery]) -> None:
    for query in queries:
        query.awaitTermination()
    failed = [q for q in queries if q.exception() is not None]
    if failed:
        raise SystemExit(f"query {failed[0].name} failed: {failed[0].exception()}")


def run(settings: Settings) -> None:
    spark = spark_session("stream_ohlc")
    spark.streams.addListener(ProgressListener(settings.lake_path))
    log.info(
        "starting master=%s topic=%s bootstrap=%s lake=%s checkpoints=%s trigger=%s watermark=%s",
        spark.sparkContext.master,
        settings.kafka_topic,
        settings.kafka_bootstrap_servers,
        settings.lake_path,
        settings.checkpoint_path,
        settings.stream_trigger,
        settings.stream_watermark,
    )
    queries: list[StreamingQuery] = []
    try:
        queries = start_queries(spark, settings)
        if settings.stream_trigger == "available-now":
            # The volatility query reads lake/ohlc: let the bars land first.
            _await(queries)
            queries.append(start_volatility(spark, settings))
            _await(queries[-1:])
        else:
            # The file source learns the partition columns (symbol, date) from the folders it
            # finds at start: an empty lake/ohlc would leave them unknown. Wait for a commit.
            volatility_started = False
            while not spark.streams.awaitAnyTermination(2):
                if not volatility_started and _bars_committed(settings):
                    queries.append(start_volatility(spark, settings))
                    volatility_started = True
            _await([q for q in queries if not q.isActive])
    except AnalysisException as exc:
        if "kafka" in str(exc).lower() and "data source" in str(exc).lower():
            raise SystemExit(f"the Kafka connector is not on the classpath (spark.jars.packages): {exc}") from exc
        raise
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
        # Progress events reach the listener asynchronously: let the last ones land in
        # lake/_progress before the driver exits.
        spark._jsparkSession.sparkContext().listenerBus().waitUntilEmpty(10_000)
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
