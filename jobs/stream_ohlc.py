"""Kafka trades -> ticks (trades), 1-second OHLCV bars and their volatility; feed events -> feed_events;
what fails -> rejects.

    SPARK_CONF_DIR=$PWD spark-submit jobs/stream_ohlc.py \
        [--bootstrap-servers 127.0.0.1:9092] [--topic crypto.trades] [--feed-events-topic crypto.feed_events] \
        [--lake lake] [--checkpoints checkpoints] \
        [--trigger available-now|"5 seconds"] [--watermark "5 seconds"]

Defaults come from `core.settings` (env vars KAFKA_BOOTSTRAP_SERVERS,
KAFKA_TOPIC, LAKE_PATH, CHECKPOINT_PATH, STREAM_TRIGGER, STREAM_WATERMARK).
One streaming query reads both topics (the trades topic once) and writes all four tables
through `jobs.lake_sink` (the trades from Spark's tasks, `jobs.tick_writer`); its checkpoint is
<checkpoints>/lake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from pyspark.errors import AnalysisException, StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from core.settings import Settings, interval_ms, load
from ingest.topics import BrokerUnreachable, TopicsMissing, check_topics
from jobs.bars import bar_updates, heartbeats, unique_trades
from jobs.feed_events import accepted_feed_events, parse_feed_events
from jobs.lake_sink import BAR_UPDATES, HEARTBEATS, STREAM_TABLES, LakeSink, tables_frame
from jobs.progress import ProgressListener, drain_events
from jobs.revision_feed import RevisionFeed
from jobs.session import MissingSparkDefaults, spark_session
from jobs.trades import accepted, parse, read_once, rejected, tick_rows
from lake import delta, logs

log = logging.getLogger("jobs.stream_ohlc")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_ohlc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers")
    parser.add_argument("--topic", dest="kafka_topic")
    parser.add_argument("--feed-events-topic", dest="kafka_feed_events_topic")
    parser.add_argument("--live-bars-topic", dest="kafka_live_bars_topic", help="where revised bars are published")
    parser.add_argument("--lake", dest="lake_path")
    parser.add_argument("--checkpoints", dest="checkpoint_path")
    parser.add_argument("--trigger", dest="stream_trigger", help='"available-now" or an interval, e.g. "5 seconds"')
    parser.add_argument("--watermark", dest="stream_watermark", help='e.g. "5 seconds"')
    parser.add_argument("--starting-offsets", dest="stream_starting_offsets", help="earliest | latest | JSON")
    parser.add_argument("--max-offsets-per-trigger", dest="stream_max_offsets_per_trigger", type=int)
    parser.add_argument(
        "--create-topics", action="store_true", help="create missing topics instead of stopping with their names"
    )
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
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", settings.stream.starting_offsets)
    )
    if settings.stream.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", settings.stream.max_offsets_per_trigger)
    return reader.load()


QUERY = "ohlc"  # its name in lake/_progress (where earlier jobs had a query per table)
CHECKPOINT = "lake"  # <checkpoints>/lake: Spark's checkpoint, plus lake_sink/
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


# The job's tables other than ohlc (`core.tables`, writer "job"), each from the parsed trades
# and feed events; ohlc comes from BAR_UPDATES and HEARTBEATS through the sink's closer, and
# volatility from the released bars.
SIDE_TABLES: dict[str, Callable[[DataFrame, DataFrame], DataFrame]] = {
    "trades": lambda events, feed: tick_rows(events),  # written by the tasks (`jobs.tick_writer`)
    "rejects": lambda events, feed: rejected(events).unionByName(rejected(feed)),
    "feed_events": lambda events, feed: accepted_feed_events(feed),
}


def lake_frame(spark: SparkSession, settings: Settings) -> DataFrame:
    """The one query: bar updates (watermark, dedup, 1 s windows) and heartbeat times, from which
    the sink releases the closed bars; rejects and feed events.

    The trades topic is read and parsed once for all its branches (`read_once`).
    """
    session_partitions = int(spark.conf.get(SHUFFLE_PARTITIONS) or 200)  # Spark's default is 200
    partitions = checkpoint_shuffle_partitions(checkpoint_dir(settings)) or session_partitions
    trades = parse(kafka_source(spark, settings, settings.kafka.topic))
    events = read_once(trades.withWatermark("event_time", settings.stream.watermark), partitions)
    feed = parse_feed_events(kafka_source(spark, settings, settings.kafka.feed_events_topic))
    return tables_frame(
        {
            BAR_UPDATES: bar_updates(unique_trades(accepted(events))),
            HEARTBEATS: heartbeats(accepted(events)),
            **{table: build(events, feed) for table, build in SIDE_TABLES.items()},
        }
    )


def checkpoint_shuffle_partitions(checkpoint: Path) -> int | None:
    """The shuffle partition count of the query's state in `checkpoint`; None before its first batch.

    A query keeps the count it started with for the life of its checkpoint (its state store
    is split that way): on a restart Spark takes it from the newest offset log entry and
    ignores the session's. `read_once` shuffles by the dedup key with this count, so that the
    dedup reuses that shuffle; built from the session's value after spark-defaults.conf
    changed, it would cost a second shuffle in every batch.
    """
    offsets = checkpoint / "offsets"
    entries = sorted((int(p.name), p) for p in offsets.iterdir() if p.name.isdigit()) if offsets.is_dir() else []
    if entries:
        try:  # "v1", then the batch's metadata (with the conf it ran under), then the offsets
            metadata = json.loads(entries[-1][1].read_text().splitlines()[1])
            return int(metadata["conf"][SHUFFLE_PARTITIONS])
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            # Spark itself reports a damaged offset log when the query starts, by name.
            log.warning("no shuffle partition count in %s (%s): using the session's", entries[-1][1], exc)
    return None


def checkpoint_dir(settings: Settings) -> Path:
    root = Path(settings.checkpoint.path)
    return root / CHECKPOINT


def check_checkpoint_matches_lake(settings: Settings, checkpoint: Path) -> None:
    """Refuse to start over silently: a lake with batches and no checkpoint would get every row again."""
    lake = Path(settings.lake.path)
    written = [table for table in (*STREAM_TABLES, "volatility") if _has_commits(lake, table)]
    offsets = checkpoint / "offsets"
    if not written or (offsets.is_dir() and any(offsets.iterdir())):
        return
    if settings.stream.starting_offsets != "earliest":
        log.warning("%s has no offsets: starting from %s, as asked", checkpoint, settings.stream.starting_offsets)
        return
    raise SystemExit(
        f"{lake} holds batches the job wrote ({', '.join(written)}), but its checkpoint {checkpoint} is missing "
        "or empty: starting there would read the topics again from 'earliest' and write those rows twice. "
        f"Restore {checkpoint} from a backup; or start over with a new lake (make clean, or new --lake and "
        "--checkpoints); or go on from now with --starting-offsets latest (the trades since the last batch are "
        f"then not in the lake), or with the end offsets of the newest batch in {lake / '_progress'}."
    )


def _has_commits(lake: Path, table: str) -> bool:
    """The job committed rows to the table (version 0 only creates it)."""
    opened = delta.open_table(lake, table)
    return opened is not None and opened.version() > 0 and bool(opened.file_uris())


def failure_cause(text: str) -> str:
    """The line of a failed query's error that names the cause: the sink's own errors first."""
    for marker in ("LakeWriteFailed: ", "SinkStateError: ", "SystemExit: "):
        for line in text.splitlines():
            if marker in line:
                return line.split(marker, 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def stopped_because(text: str, checkpoint: Path, settings: Settings) -> str:
    """The job's last words: the cause, and the way out when it is a damaged checkpoint."""
    message = f"stream_ohlc: the query stopped: {failure_cause(text)}"
    if str(checkpoint) in text or "MALFORMED_LOG_FILE" in text:
        message += (
            f"\nThe checkpoint {checkpoint} is damaged. Restore it from a backup; or move it away and start "
            "again with --starting-offsets latest (the trades since its last batch are then not in the lake) or "
            f"with the end offsets of the newest batch in {Path(settings.lake.path) / '_progress'}; or start "
            "over with a new lake (make clean, or new --lake and --checkpoints)."
        )
    return message


def lake_sink(settings: Settings) -> LakeSink:
    if "://" in settings.lake.path or "://" in settings.checkpoint.path:
        raise SystemExit("the job writes the lake from its driver: --lake and --checkpoints must be local paths")
    try:
        delta.refuse_old_format(settings.lake.path)
    except delta.OldLakeFormat as exc:
        raise SystemExit(str(exc)) from None
    check_checkpoint_matches_lake(settings, checkpoint_dir(settings))
    return LakeSink(
        Path(settings.lake.path),
        checkpoint_dir(settings),
        STREAM_TABLES,
        settings.stream.volatility_windows_s,
        interval_ms(settings.stream.watermark),
        RevisionFeed(settings),
    )


def build_queries(spark: SparkSession, settings: Settings, sink: LakeSink) -> dict[str, DataStreamWriter]:
    """Every streaming query of the job, by name, wired and triggered but not started.

    Pure wiring: sources, transformations, sink, checkpoint and trigger from `settings`; tests
    start them in-process over temporary folders (`tests/test_job_queries.py`).
    """
    writer = (
        lake_frame(spark, settings)
        .writeStream.queryName(QUERY)
        # Each batch's changed windows: the sink releases them as soon as the watermark passes
        # (append mode would emit them a batch later).
        .outputMode("update")
        .foreachBatch(sink)
        .option("checkpointLocation", str(checkpoint_dir(settings)))
    )
    if settings.stream.trigger == "available-now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=settings.stream.trigger)
    return {QUERY: writer}


def run(settings: Settings) -> None:
    spark = spark_session("stream_ohlc")
    sink = lake_sink(settings)
    spark.streams.addListener(ProgressListener(settings.lake.path, sink.late_trades))
    log.info(
        "starting master=%s topic=%s bootstrap=%s lake=%s checkpoints=%s trigger=%s watermark=%s",
        spark.sparkContext.master,
        settings.kafka.topic,
        settings.kafka.bootstrap_servers,
        settings.lake.path,
        settings.checkpoint.path,
        settings.stream.trigger,
        settings.stream.watermark,
    )
    query: StreamingQuery | None = None
    try:
        (query,) = [writer.start() for writer in build_queries(spark, settings, sink).values()]
        try:
            query.awaitTermination()
        except StreamingQueryException as exc:
            raise SystemExit(stopped_because(str(exc), checkpoint_dir(settings), settings)) from None
        if query.exception() is not None:
            raise SystemExit(stopped_because(str(query.exception()), checkpoint_dir(settings), settings))
    except AnalysisException as exc:
        if "kafka" in str(exc).lower() and "data source" in str(exc).lower():
            raise SystemExit(f"the Kafka connector is not on the classpath (spark.jars.packages): {exc}") from exc
        raise
    finally:
        if query is not None and query.isActive:
            query.stop()
        drain_events(spark)  # the last progress lands in lake/_progress before the driver exits
    log.info("the query finished")


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = vars(parse_args(sys.argv[1:] if argv is None else argv))
    create_topics = args.pop("create_topics")
    try:
        settings = load(**args)
    except ValidationError as exc:
        print(f"stream_ohlc: bad settings:\n{exc}", file=sys.stderr)
        return 2
    try:  # before Spark starts: its Kafka source would only fail later, and less clearly
        for name in check_topics(
            settings, [settings.kafka.topic, settings.kafka.feed_events_topic], create=create_topics
        ):
            print(f"stream_ohlc: created topic {name}", file=sys.stderr)
    except TopicsMissing as exc:
        print(f"stream_ohlc: {exc}", file=sys.stderr)
        return 2
    except BrokerUnreachable as exc:
        print(f"stream_ohlc: {exc}", file=sys.stderr)
        return 1
    try:
        run(settings)
    except MissingSparkDefaults as exc:
        print(f"stream_ohlc: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
