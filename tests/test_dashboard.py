"""Every dashboard page, run headless with Streamlit's AppTest, over a fixture lake and an empty one."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.live_bars import encode
from core.live_tail import LiveFeed
from core.settings import REPO_ROOT
from dashboard import live_feed
from tests.support.dashboard_lake import SECONDS, START, build
from tests.support.ports import free_port

APP = str(REPO_ROOT / "dashboard" / "app.py")
PAGES = ["pages/market.py", "pages/compare.py", "pages/health.py", "pages/sql.py", "pages/predictions.py"]


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("dash") / "lake")


@pytest.fixture(autouse=True)
def feed(monkeypatch: pytest.MonkeyPatch) -> LiveFeed:
    """A live feed that is never started (no thread, no broker): tests put bars in it."""
    fake = LiveFeed("127.0.0.1:9", "crypto.bars.live")
    monkeypatch.setattr(live_feed, "current", lambda: fake)
    return fake


def _app(monkeypatch: pytest.MonkeyPatch, lake: Path) -> AppTest:
    monkeypatch.setenv("LAKE_PATH", str(lake))
    # No broker: the pages must not depend on one that happens to run on the default port.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    return AppTest.from_file(APP, default_timeout=60).run()


def _values(encoded: object) -> list[float]:
    """A Plotly array from figure JSON: a list, or typed binary ({"dtype", "bdata"})."""
    if isinstance(encoded, dict):
        return list(np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]))
    return list(encoded)  # type: ignore[call-overload]


def _traces(at: AppTest) -> list[dict[str, object]]:
    """The traces of the market page's first chart (its figure JSON)."""
    return list(json.loads(at.get("plotly_chart")[0].proto.spec)["data"])


def _candles(at: AppTest) -> int:
    """Candles in the market page's first chart."""
    return len(_traces(at)[0]["x"])  # type: ignore[arg-type]


def test_market_page_follows_symbol_timeframe_and_range(monkeypatch: pytest.MonkeyPatch, lake_dir: Path) -> None:
    at = _app(monkeypatch, lake_dir)
    assert not at.exception
    assert _candles(at) == 15  # last 15 minutes of 1-minute candles
    assert "AAAUSDT" in at.caption[0].value
    at.selectbox(key="market_symbol").select("CCCUSDT").run()
    assert "CCCUSDT" in at.caption[0].value
    at.selectbox(key="market_timeframe").select("5s").run()
    assert _candles(at) == 180
    at.radio(key="market_range").set_value("last 1 h").run()
    assert _candles(at) == 720
    at.toggle(key="market_annualized").set_value(True).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    assert any("pipeline may have stalled" in w.value for w in at.warning)  # a January fixture lake


def _live_bar(second: int, close: str, trade_ms: int) -> bytes:
    """The fixture's AAAUSDT bar `second` seconds after the lake's newest one ends, as the live topic carries it."""
    start = int((START + dt.timedelta(seconds=SECONDS + second)).timestamp() * 1000)
    price = Decimal(close)
    return encode({
        "exchange": "binance", "symbol": "AAAUSDT", "window_start": start, "window_end": start + 1000,
        "open": price, "high": price + 1, "low": price - 1, "close": price, "volume": Decimal(3),
        "quote_volume": price * 3, "vwap": float(price), "trade_count": 3, "buy_volume": Decimal(2),
        "sell_volume": Decimal(1), "first_trade_id": 10**6 + second, "last_trade_id": 10**6 + second,
        "final": False, "emitted_at": trade_ms, "last_trade_ts": trade_ms,
    })  # fmt: skip


def test_market_page_draws_live_bars_as_provisional_candles(
    monkeypatch: pytest.MonkeyPatch, lake_dir: Path, feed: LiveFeed
) -> None:
    now_ms = int(time.time() * 1000)
    for second in range(12):  # 12:00:00 .. 12:00:11, after the lake's newest bar (11:59:59)
        feed.ingest(_live_bar(second, str(200 + second), now_ms))
    feed.ingest(b"{garbage")
    at = _app(monkeypatch, lake_dir)
    assert not at.exception
    traces = {t["name"]: t for t in _traces(at)}
    provisional = traces["provisional"]
    assert provisional["type"] == "candlestick" and "provisional" in provisional["hovertext"][0]  # type: ignore[index]
    assert len(provisional["x"]) == 1 and _values(provisional["close"]) == [211.0]  # type: ignore[arg-type]
    assert _values(provisional["open"]) == [200.0]  # type: ignore[arg-type]
    assert _values(traces["provisional buys"]["y"]) == [24.0]  # type: ignore[arg-type]
    assert "and 1 provisional from live bars" in at.caption[0].value
    assert "live stream: connecting to 127.0.0.1:9 · 1 undecodable" in [c.value for c in at.caption]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last price"] == "211" and metrics["Live bar age"].endswith(" s")
    # The lake is a January one, yet trades flow: its stream job, not the market, has stopped.
    assert any("live bars still arrive" in w.value for w in at.warning)
    at.selectbox(key="market_timeframe").select("5s").run()
    assert len(_traces(at)[1]["x"]) == 3  # type: ignore[arg-type]


def test_a_replayed_tape_is_named_not_called_a_stall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tape_start = dt.datetime(2024, 8, 8, 21, 0, 1, tzinfo=dt.UTC)  # its newest bar ends 2024-08-09 00:00:01
    lake = build(tmp_path / "lake", {"AAAUSDT": 100.0}, 2, tape_start, written_after=dt.timedelta(days=480))
    at = _app(monkeypatch, lake)
    assert not at.exception
    assert [i.value for i in at.info] == ["This lake holds a replayed tape; its newest bar is 2024-08-09 00:00:01 UTC."]
    assert not any("stalled" in w.value for w in at.warning)
    assert "provisional" not in {t["name"] for t in _traces(at)}
    assert {m.label: m.value for m in at.metric}["Newest bar age"].endswith(" h")  # days and hours


def test_market_page_refuses_bad_parameters_politely(monkeypatch: pytest.MonkeyPatch, lake_dir: Path) -> None:
    at = _app(monkeypatch, lake_dir)
    at.selectbox(key="market_timeframe").select("1s").run()
    at.radio(key="market_range").set_value("last 24 h").run()
    assert not at.exception
    assert any("too many to draw" in w.value for w in at.warning)
    at.radio(key="market_range").set_value("custom").run()
    at.date_input(key="market_to").set_value(at.date_input(key="market_from").value).run()
    assert not at.exception and any("before the end" in w.value for w in at.warning)


def test_compare_page(monkeypatch: pytest.MonkeyPatch, lake_dir: Path) -> None:
    at = _app(monkeypatch, lake_dir)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    lines = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [t["name"] for t in lines] == ["binance:AAAUSDT", "binance:BBBUSDT", "binance:CCCUSDT"]
    assert _values(lines[0]["y"])[0] == pytest.approx(100.0)
    heatmap = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]
    assert heatmap["type"] == "heatmap" and len(heatmap["z"]) == 3
    at.multiselect(key="compare_symbols").set_value(["binance:AAAUSDT"]).run()
    assert "Pick two symbols" in at.info[0].value and not at.get("plotly_chart")


def test_health_page(monkeypatch: pytest.MonkeyPatch, lake_dir: Path) -> None:
    at = _app(monkeypatch, lake_dir)
    at.switch_page("pages/health.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Late trades (revised into their bars)"] == "2" and metrics["Rejected records"] == "2"
    at.selectbox(key="health_reject_reason").select("nonpositive_price").run()
    assert '{"price":"-1"}' in str(at.dataframe[-1].value.to_dict())


def test_sql_page_runs_queries_and_explains_refusals(monkeypatch: pytest.MonkeyPatch, lake_dir: Path) -> None:
    at = _app(monkeypatch, lake_dir)
    at.switch_page("pages/sql.py").run()
    at.button(key="sql_run").click().run()
    assert not at.exception and at.caption[-1].value == "3 rows"
    at.text_area[0].set_value("DROP VIEW ohlc").run()
    at.button(key="sql_run").click().run()
    assert not at.exception and at.error[0].value == "Not run: only SELECT queries may run here, not DROP"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_an_empty_lake_explains_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str
) -> None:
    at = _app(monkeypatch, tmp_path / "no-lake")
    at.switch_page(page).run()
    assert not at.exception
    if page != "pages/sql.py":
        assert at.info, page


def test_one_symbol_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lake = build(tmp_path / "lake", symbols={"AAAUSDT": 100.0}, batches=2)
    at = _app(monkeypatch, lake)
    assert not at.exception and _candles(at) == 15
    at.switch_page("pages/compare.py").run()
    assert not at.exception and "comparing needs two symbols" in at.info[0].value
