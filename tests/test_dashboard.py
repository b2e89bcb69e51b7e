"""The first dashboard page, run headless with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lake.settings import REPO_ROOT
from tests.test_commit_log import _log

APP = str(REPO_ROOT / "dashboard" / "app.py")


def test_empty_lake_shows_a_message_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_PATH", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "no bars yet" in at.info[0].value


def test_candles_for_the_chosen_symbol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lake.schema import OHLC, to_arrow

    table_dir = tmp_path / "ohlc"
    schema = to_arrow(tuple(c for c in OHLC if c.name not in ("symbol", "date")))
    for batch, (symbol, n) in enumerate((("BTCUSDT", 3), ("ETHUSDT", 2))):
        part = table_dir / f"symbol={symbol}" / "date=2024-08-08"
        part.mkdir(parents=True)
        start = dt.datetime(2024, 8, 8, 23, 59, tzinfo=dt.UTC)
        rows = [
            {
                "exchange": "binance",
                "window_start": start + dt.timedelta(seconds=i),
                "window_end": start + dt.timedelta(seconds=i + 1),
                "open": Decimal(1),
                "high": Decimal(2),
                "low": Decimal(1),
                "close": Decimal(2),
                "volume": Decimal(1),
                "quote_volume": Decimal(2),
                "vwap": 2.0,
                "trade_count": 1,
                "buy_volume": Decimal(1),
                "sell_volume": Decimal(0),
                "first_trade_id": i,
                "last_trade_id": i,
            }
            for i in range(n)
        ]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), part / "f.parquet")
        _log(table_dir, str(batch), [f"file://{part}/f.parquet"])
    monkeypatch.setenv("LAKE_PATH", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.selectbox[0].options == ["BTCUSDT", "ETHUSDT"]
    assert "3 most recent" in at.caption[0].value
    at.selectbox[0].select("ETHUSDT").run()
    assert "2 most recent" in at.caption[0].value
