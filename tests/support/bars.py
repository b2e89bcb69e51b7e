"""The job's bars as the tests look at them: `core.schema.OHLC` rows, without the closer's columns."""

from __future__ import annotations

from pyspark.sql import DataFrame

from jobs.bar_closer import LAST_EVENT_TIME, LAST_PARTITION
from jobs.bars import bar_updates


def one_second_bars(trades: DataFrame) -> DataFrame:
    """`core.schema.OHLC` rows of `trades` (`jobs.bars.bar_updates` less its closer columns)."""
    return bar_updates(trades).drop(LAST_EVENT_TIME, LAST_PARTITION)
