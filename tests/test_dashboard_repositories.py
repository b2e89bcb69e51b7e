"""The dashboard's repositories over a small fixture lake: parameterized SQL, right answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dashboard import repositories
from dashboard.client import user_query
from lake.sandbox import QueryRefused
from tests.support.dashboard_lake import SECONDS, START, build


@pytest.fixture(scope="module")
def lake_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build(tmp_path_factory.mktemp("dash") / "lake"))


def test_markets_list_each_symbol_with_its_newest_bar(lake_path: str) -> None:
    markets = repositories.markets(lake_path)
    assert list(markets["symbol"]) == ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    assert (markets["newest_end"] == START + dt.timedelta(seconds=SECONDS)).all()


def test_candles_aggregate_the_bars(lake_path: str) -> None:
    end = START + dt.timedelta(seconds=SECONDS)
    one_minute = repositories.candles(lake_path, "binance", "AAAUSDT", 60, START, end)
    assert len(one_minute) == SECONDS // 60
    first = one_minute.iloc[0]
    # The fixture's bars: open = 100 + 0.01 i, high = open + 0.5, low = open - 0.5, volume 2 each.
    assert (first["open"], first["close"]) == (100.0, 100.59 + 0.1)
    assert (first["high"], first["low"], first["volume"]) == (100.59 + 0.5, 99.5, 120.0)
    assert first["buy_volume"] + first["sell_volume"] == first["volume"]
    seconds = repositories.candles(lake_path, "binance", "AAAUSDT", 1, START, START + dt.timedelta(minutes=1))
    assert len(seconds) == 60
    assert repositories.candles(lake_path, "coinbase", "AAAUSDT", 60, START, end).empty


def test_volatility_takes_the_newest_value_per_bucket(lake_path: str) -> None:
    end = START + dt.timedelta(hours=1)
    vol = repositories.volatility(lake_path, "binance", "BBBUSDT", 300, START, end)
    assert len(vol) == 12 and (vol["volatility_60s"] == 0.001).all() and (vol["realized_vol_300s"] == 0.004).all()


def test_health_repositories(lake_path: str) -> None:
    progress = repositories.progress(lake_path, START - dt.timedelta(days=1))
    assert list(progress["batch_id"]) == list(range(6))
    assert repositories.late_rows(lake_path).to_dict("records") == [{"query": "ohlc", "late_rows": 2}]
    rejects = repositories.rejects_by_reason(lake_path)
    assert sorted(rejects["reason"]) == ["malformed_json", "nonpositive_price"]
    sample = repositories.rejects_sample(lake_path, "malformed_json")
    assert list(sample["raw"]) == ["{not json"]
    assert repositories.job_offsets(lake_path) == {"crypto.trades": {"0": 6000}}
    assert repositories.feed_events(lake_path).empty


def test_user_sql_goes_through_the_sandbox(lake_path: str) -> None:
    result = user_query(lake_path, "SELECT count(*) AS n FROM ohlc", 10, 5.0)
    assert result.table.to_pylist() == [{"n": 3 * SECONDS}]
    with pytest.raises(QueryRefused, match="only SELECT"):
        user_query(lake_path, f"COPY ohlc TO '{Path(lake_path)}/x.csv'", 10, 5.0)


def test_written_at_is_the_first_batch_whose_watermark_passed_the_bar(lake_path: str, tmp_path: Path) -> None:
    newest_end = START + dt.timedelta(seconds=SECONDS)
    assert repositories.written_at(lake_path, newest_end) == newest_end + dt.timedelta(seconds=20)
    first_batch_end = START + dt.timedelta(seconds=SECONDS // 6)
    assert repositories.written_at(lake_path, START + dt.timedelta(seconds=1)) == first_batch_end + dt.timedelta(
        seconds=20
    )
    assert repositories.written_at(lake_path, newest_end + dt.timedelta(seconds=1)) is None  # not written yet
    assert repositories.written_at(str(tmp_path / "no-lake"), newest_end) is None  # no progress records
