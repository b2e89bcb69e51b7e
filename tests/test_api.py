"""The HTTP API in-process (TestClient): every endpoint and error, over a fixture lake, an empty
lake, a one-symbol lake and a missing one. Decimals are checked digit for digit against the rows
the lake was built from."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.candles import vwap
from core.settings import Settings
from tests.support import dashboard_lake
from tests.support.api_helpers import filled_feed, live_bar
from tests.support.lake_builder import SinkLake, ohlc_rows

START = dashboard_lake.START
ONE = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def settings_for(lake: Path, **overrides: Any) -> Settings:
    return Settings().with_overrides(lake_path=str(lake), kafka_bootstrap_servers="127.0.0.1:9", **overrides)


@pytest.fixture(scope="module")
def fixture_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dashboard_lake.build(tmp_path_factory.mktemp("api") / "lake")


@pytest.fixture(scope="module")
def one_symbol_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 bars of XYZUSDT, 09:00:00 to 09:01:29: the current minute is half in the lake."""
    lake = tmp_path_factory.mktemp("api-one") / "lake"
    SinkLake(lake).write_batch(ohlc_rows("XYZUSDT", ONE, 90, price=250.0))
    return lake


@pytest.fixture(scope="module")
def client(fixture_lake: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(fixture_lake))) as c:
        yield c


def reference_candles(symbol: str, price: float, step_s: int, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Candles straight from the rows the fixture wrote, in Python decimals (no DuckDB)."""
    rows: list[dict[str, Any]] = []
    batches, step = 6, dashboard_lake.SECONDS // 6
    for b in range(batches):
        rows += ohlc_rows(symbol, START + dt.timedelta(seconds=b * step), step, price + b)
    buckets: dict[dt.datetime, list[dict[str, Any]]] = {}
    for r in rows:
        t = r["window_start"]
        if start <= t < end:
            key = dt.datetime.fromtimestamp(t.timestamp() // step_s * step_s, dt.UTC)
            buckets.setdefault(key, []).append(r)
    out = []
    for key in sorted(buckets):
        bars = buckets[key]
        volume, quote = sum(b["volume"] for b in bars), sum(b["quote_volume"] for b in bars)
        out.append({
            "time": key.isoformat().replace("+00:00", "Z"), "open": bars[0]["open"],
            "high": max(b["high"] for b in bars), "low": min(b["low"] for b in bars), "close": bars[-1]["close"],
            "volume": volume, "quote_volume": quote,
            "vwap": vwap(quote, volume), "trade_count": sum(b["trade_count"] for b in bars),
            "buy_volume": sum(b["buy_volume"] for b in bars), "sell_volume": sum(b["sell_volume"] for b in bars),
            "first_trade_id": bars[0]["first_trade_id"], "last_trade_id": bars[-1]["last_trade_id"],
            "bars": len(bars), "provisional": False,
        })  # fmt: skip
    return out


def as_decimals(candle: dict[str, Any]) -> dict[str, Any]:
    out = dict(candle)
    for name in ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume"):
        assert isinstance(candle[name], str), f"{name} travels as a string, not {type(candle[name]).__name__}"
        out[name] = Decimal(candle[name])
    return out


@pytest.mark.parametrize("interval,step_s", [("1s", 1), ("1m", 60), ("15m", 900), ("1h", 3600)])
def test_candles_equal_the_rows_exactly(client: TestClient, interval: str, step_s: int) -> None:
    start, end = START + dt.timedelta(minutes=50), START + dt.timedelta(minutes=125)
    r = client.get("/v1/candles", params={"exchange": "binance", "symbol": "BBBUSDT", "interval": interval,
                                          "start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is False and body["interval"] == interval
    got = [as_decimals(c) for c in body["candles"]]
    want = reference_candles("BBBUSDT", 50.0, step_s, start, end)
    assert len(got) == len(want) > 0
    assert got == want


def test_candle_files_keep_the_decimals(client: TestClient) -> None:
    params = {"exchange": "binance", "symbol": "AAAUSDT", "interval": "5m", "limit": 12}
    rows = client.get("/v1/candles", params=params).json()["candles"]
    parquet = client.get("/v1/candles", params={**params, "format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.schema.field("close").type == pa.decimal128(18, 8)
    assert [format(v, "f") for v in table.column("quote_volume").to_pylist()] == [c["quote_volume"] for c in rows]
    arrow = client.get("/v1/candles", params={**params, "format": "arrow"})
    assert pa.ipc.open_stream(arrow.content).read_all().equals(table)
    csv = client.get("/v1/candles", params={**params, "format": "csv"})
    assert 'filename="binance-AAAUSDT-5m.csv"' in csv.headers["content-disposition"]
    lines = csv.text.splitlines()
    assert len(lines) == 13 and lines[1].split(",")[4] == rows[0]["close"]


def test_candles_default_to_the_newest_and_limit_truncates(client: TestClient) -> None:
    body = client.get("/v1/candles", params={"exchange": "binance", "symbol": "CCCUSDT", "limit": 3}).json()
    assert [c["time"] for c in body["candles"]] == [
        "2026-01-05T11:57:00Z",
        "2026-01-05T11:58:00Z",
        "2026-01-05T11:59:00Z",
    ]
    start = START.isoformat()
    body = client.get("/v1/candles", params={"exchange": "binance", "symbol": "CCCUSDT", "start": start, "limit": 2,
                                             "end": (START + dt.timedelta(hours=1)).isoformat()}).json()  # fmt: skip
    assert body["truncated"] is True and [c["time"] for c in body["candles"]] == [
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:01:00Z",
    ]


@pytest.mark.parametrize(
    "params,status,words",
    [
        ({"exchange": "binance", "symbol": "NOPEUSDT"}, 404, "no bars of binance:NOPEUSDT"),
        ({"exchange": "kraken", "symbol": "AAAUSDT"}, 404, "no bars of kraken:AAAUSDT"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "interval": "2m"}, 422, "interval: Input should be"),
        ({"exchange": "binance", "symbol": "AAA USDT"}, 422, "symbol: String should match pattern"),
        ({"symbol": "AAAUSDT"}, 422, "exchange: Field required"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "start": "yesterday"}, 422,
         "start: Input should be a valid datetime"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T09:00:00Z"},
         400, "must be before end"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "start": "0001-01-01T00:00:00Z"}, 400, "outside 1970..2199"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "interval": "1s", "start": "2025-01-01T00:00:00Z"}, 413,
         "the cap is 100,000 per request"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "limit": 0}, 422,
         "limit: Input should be greater than or equal to 1"),
        ({"exchange": "binance", "symbol": "AAAUSDT", "format": "xlsx"}, 422, "format: Input should be"),
    ],
)  # fmt: skip
def test_candle_errors_are_one_line_reasons(
    client: TestClient, params: dict[str, Any], status: int, words: str
) -> None:
    r = client.get("/v1/candles", params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail


def test_symbols_list_first_and_newest_bars(client: TestClient) -> None:
    markets = client.get("/v1/symbols").json()["markets"]
    assert [(m["exchange"], m["symbol"]) for m in markets] == [("binance", s) for s in sorted(dashboard_lake.SYMBOLS)]
    assert {m["first_bar"] for m in markets} == {"2026-01-05T09:00:00Z"}
    assert {m["newest_bar"] for m in markets} == {"2026-01-05T11:59:59Z"}
    assert {m["newest_bar_end"] for m in markets} == {"2026-01-05T12:00:00Z"}


def test_volatility_rows_and_the_macro(client: TestClient) -> None:
    params = {
        "exchange": "binance",
        "symbol": "AAAUSDT",
        "start": "2026-01-05T10:00:00Z",
        "end": "2026-01-05T10:00:05Z",
    }
    body = client.get("/v1/volatility", params=params).json()
    assert body["columns"][:3] == ["time", "close", "log_return"] and "realized_vol_300s" in body["columns"]
    rows = body["rows"]
    assert len(rows) == 5 and rows[0]["time"] == "2026-01-05T10:00:00Z"
    closes = [Decimal(r["close"]) for r in rows]
    assert all(isinstance(r["close"], str) for r in rows)
    assert [r["log_return"] for r in rows[1:]] == pytest.approx(
        [math.log(b / a) for a, b in itertools.pairwise(closes)], rel=1e-12
    )
    hourly = client.get("/v1/volatility", params={**params, "interval": "1h", "start": "2026-01-05T09:00:00Z",
                                                  "end": "2026-01-05T12:00:00Z"}).json()  # fmt: skip
    assert [r["time"] for r in hourly["rows"]] == [
        "2026-01-05T09:00:00Z",
        "2026-01-05T10:00:00Z",
        "2026-01-05T11:00:00Z",
    ]
    assert hourly["columns"] == ["time", "returns", "volatility", "realized_vol", "realized_vol_annualized"]
    assert client.get("/v1/volatility", params={**params, "symbol": "NOPE"}).status_code == 404


def test_latest_gives_the_newest_final_bar(client: TestClient) -> None:
    body = client.get("/v1/latest", params={"exchange": "binance", "symbol": "AAAUSDT"}).json()
    final = body["final"]
    assert final["window_start"] == "2026-01-05T11:59:59Z" and final["source"] == "lake" and final["final"] is True
    assert final["close"] == "123.09000000" and body["provisional"] is None
    assert client.get("/v1/latest", params={"exchange": "binance", "symbol": "NOPE"}).status_code == 404


def test_sql_runs_one_select_and_refuses_the_rest(client: TestClient) -> None:
    r = client.post("/v1/sql", json={"query": "SELECT symbol, max(close) AS top FROM ohlc GROUP BY 1 ORDER BY 1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == [{"name": "symbol", "type": "string"}, {"name": "top", "type": "decimal128(18, 8)"}]
    assert body["rows"][0] == ["AAAUSDT", "123.09000000"] and body["truncated"] is False
    capped = client.post("/v1/sql", json={"query": "SELECT * FROM ohlc", "max_rows": 7}).json()
    assert capped["row_count"] == 7 and capped["truncated"] is True
    for query, words in [
        ("COPY ohlc TO 'x.csv'", "only SELECT queries"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv() is not allowed"),
        ("ATTACH '/tmp/x.db'", "only SELECT queries"),
        ("SELEC 1", "does not parse"),
        ("SELECT * FROM nope", "nope"),
    ]:
        r = client.post("/v1/sql", json={"query": query})
        assert r.status_code == 400 and words in r.json()["detail"], (query, r.text)
    assert client.post("/v1/sql", json={"sql": "SELECT 1"}).status_code == 422


def test_health_names_every_reason_with_503(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    text = " | ".join(body["reasons"])
    assert "stale (newest bar older than 60 s): binance:AAAUSDT" in text
    assert "stream job: its newest batch started" in text
    assert "kafka: no broker answers at 127.0.0.1:9" in text
    assert body["rejects_by_reason"] == [
        {"reason": "malformed_json", "count": 1},
        {"reason": "nonpositive_price", "count": 1},
    ]
    assert [j["query"] for j in body["job"]] == ["ohlc"] and body["job"][0]["batch_id"] == 5
    assert len(body["freshness"]) == 3 and all(f["stale"] for f in body["freshness"])


def test_provisional_candles_merge_the_lake_and_the_live_bars_exactly(one_symbol_lake: Path) -> None:
    live = [live_bar("XYZUSDT", ONE + dt.timedelta(seconds=s), f"260.{s}", final=s < 92, trade_id=1000 + 3 * s)
            for s in range(85, 95)]  # fmt: skip
    with TestClient(create_app(settings_for(one_symbol_lake), feed=filled_feed(live))) as c:
        params = {"exchange": "binance", "symbol": "XYZUSDT", "interval": "1m", "start": ONE.isoformat(),
                  "end": (ONE + dt.timedelta(minutes=2)).isoformat()}  # fmt: skip
        plain = c.get("/v1/candles", params=params).json()["candles"]
        body = c.get("/v1/candles", params={**params, "include_provisional": "true"}).json()["candles"]
        latest = c.get("/v1/latest", params={"exchange": "binance", "symbol": "XYZUSDT"}).json()
    assert [c["provisional"] for c in plain] == [False, False] and plain[1]["bars"] == 30
    assert [c["provisional"] for c in body] == [False, True]
    assert body[0] == plain[0]
    lake_part, fresh = (
        plain[1],
        [b for b in live if b["window_start"] >= live[0]["window_start"] + 5000],
    )  # after 09:01:29
    merged = as_decimals(body[1])
    assert merged["bars"] == 30 + len(fresh) == 35
    assert merged["open"] == Decimal(lake_part["open"]) and merged["close"] == fresh[-1]["close"]
    assert merged["high"] == max(Decimal(lake_part["high"]), *(b["high"] for b in fresh))
    assert merged["volume"] == Decimal(lake_part["volume"]) + sum(b["volume"] for b in fresh)
    assert merged["quote_volume"] == Decimal(lake_part["quote_volume"]) + sum(b["quote_volume"] for b in fresh)
    assert (
        merged["last_trade_id"] == fresh[-1]["last_trade_id"]
        and merged["first_trade_id"] == lake_part["first_trade_id"]
    )
    assert merged["vwap"] == vwap(merged["quote_volume"], merged["volume"])
    # latest: the newest final bar is live (09:01:31, not yet in the lake), the forming one after it
    assert latest["final"]["source"] == "live" and latest["final"]["window_start"] == "2026-03-02T09:01:31Z"
    assert latest["provisional"]["window_start"] == "2026-03-02T09:01:34Z"
    assert latest["provisional"]["close"] == "260.95000000" and latest["provisional"]["final"] is False


def test_an_empty_lake_answers_with_no_markets(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    with TestClient(create_app(settings_for(tmp_path / "lake"))) as c:
        assert c.get("/v1/symbols").json() == {"markets": []}
        r = c.get("/v1/candles", params={"exchange": "binance", "symbol": "BTCUSDT"})
        assert r.status_code == 404 and "GET /v1/symbols" in r.json()["detail"]
        health = c.get("/v1/health")
        assert health.status_code == 503 and "lake: it holds no bars yet" in health.json()["reasons"]
        assert c.post("/v1/sql", json={"query": "SELECT count(*) FROM ohlc"}).json()["rows"] == [[0]]


def test_a_missing_lake_is_503_with_the_folder(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path / "nowhere"))) as c:
        for r in (c.get("/v1/symbols"), c.get("/v1/candles", params={"exchange": "binance", "symbol": "BTCUSDT"}),
                  c.post("/v1/sql", json={"query": "SELECT 1"})):  # fmt: skip
            assert (
                r.status_code == 503 and f"the lake folder {tmp_path / 'nowhere'} does not exist" in r.json()["detail"]
            )
        health = c.get("/v1/health").json()
        assert health["lake"]["ok"] is False and any("does not exist" in x for x in health["reasons"])


def test_a_damaged_file_is_503_not_500(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    SinkLake(lake).write_batch(ohlc_rows("XYZUSDT", ONE, 30))
    # No rollups made ahead: one made from the files before they were damaged would (rightly)
    # still be served, and the request would not read the damaged file.
    with TestClient(create_app(settings_for(lake, api_warm_days=0))) as c:
        for f in (lake / "ohlc").rglob("*.parquet"):
            f.write_bytes(b"PAR1 not parquet at all PAR1")
        r = c.get("/v1/candles", params={"exchange": "binance", "symbol": "XYZUSDT", "start": ONE.isoformat()})
        assert r.status_code == 503 and "cannot be read" in r.json()["detail"], r.text


def test_the_key_is_required_when_set(fixture_lake: Path) -> None:
    with TestClient(create_app(settings_for(fixture_lake, api_key="s3cret"))) as c:
        assert c.get("/v1/symbols").status_code == 401
        assert c.get("/v1/symbols", headers={"X-API-Key": "wrong"}).json() == {
            "detail": "a valid X-API-Key header is required"
        }
        assert c.get("/v1/symbols", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/docs").status_code == 200


def test_cors_is_off_unless_configured(client: TestClient, fixture_lake: Path) -> None:
    origin = {"Origin": "http://evil.example"}
    assert "access-control-allow-origin" not in client.get("/v1/symbols", headers=origin).headers
    with TestClient(create_app(settings_for(fixture_lake, api_cors_origins=("http://ok.example",)))) as c:
        assert (
            c.get("/v1/symbols", headers={"Origin": "http://ok.example"}).headers["access-control-allow-origin"]
            == "http://ok.example"
        )
        assert "access-control-allow-origin" not in c.get("/v1/symbols", headers=origin).headers


def test_a_request_over_the_time_limit_gets_503(fixture_lake: Path) -> None:
    slow = "SELECT count(*) FROM range(100000000000) a"  # runs for minutes
    with TestClient(create_app(settings_for(fixture_lake, api_request_timeout_s=1.0))) as c:
        r = c.post("/v1/sql", json={"query": slow})
    assert r.status_code in (400, 503), r.text
    assert "longer than" in r.json()["detail"]


def test_the_openapi_schema_says_decimals_are_strings(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    candle = schema["components"]["schemas"]["Candle"]["properties"]
    assert candle["close"]["type"] == "string" and candle["close"]["format"] == "decimal"
    assert "never float" in candle["close"]["description"]
    assert {"/v1/symbols", "/v1/candles", "/v1/latest", "/v1/volatility", "/v1/health", "/v1/sql"} <= set(
        schema["paths"]
    )


@pytest.fixture(scope="module")
def two_day_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two exchanges across midnight, in three batches (so a partition has several files)."""
    lake = tmp_path_factory.mktemp("api-two-day") / "lake"
    sink = SinkLake(lake)
    start = dt.datetime(2026, 3, 2, 23, 41, 7, tzinfo=dt.UTC)
    rows = ohlc_rows("XYZUSDT", start, 40 * 60, price=250.0)
    rows += [
        {**r, "exchange": "coinbase", "close": r["close"] + Decimal("0.03")}
        for r in ohlc_rows("XYZUSDT", start, 1500, 90.0)
    ]
    for part in (rows[:1000], rows[1000:3100], rows[3100:]):
        sink.write_batch(part)
    return lake


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "1d"])
@pytest.mark.parametrize("exchange", ["binance", "coinbase"])
def test_rolled_up_candles_equal_the_macro(two_day_lake: Path, interval: str, exchange: str) -> None:
    import lake
    from lake.macros import INTERVALS_S

    app = create_app(settings_for(two_day_lake))
    con = lake.connect(two_day_lake)
    with TestClient(app) as c:
        ranges = [
            ("2026-03-02T23:00:00Z", "2026-03-03T01:00:00Z"),
            ("2026-03-02T23:45:00Z", "2026-03-03T00:17:00Z"),
            ("2026-03-02T23:45:30Z", "2026-03-03T00:17:00Z"),  # not minute-aligned: from the bars
        ]
        for start, end in ranges:
            params = {"exchange": exchange, "symbol": "XYZUSDT", "interval": interval, "start": start, "end": end}
            got = c.get("/v1/candles", params=params).json()["candles"]
            want = con.execute(
                "SELECT bucket_start, open, high, low, close, volume, quote_volume, trade_count, buy_volume, "
                "sell_volume, first_trade_id, last_trade_id, bars "
                "FROM candles('XYZUSDT', to_seconds(?), ?, ?, venue := ?) ORDER BY 1",
                [INTERVALS_S[interval], dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), exchange],
            ).fetchall()
            assert len(got) == len(want) > 0, (start, end)
            for candle, row in zip(got, want, strict=True):
                assert dt.datetime.fromisoformat(candle["time"]) == row[0]
                names = ("open", "high", "low", "close", "volume", "quote_volume", "trade_count", "buy_volume",
                         "sell_volume", "first_trade_id", "last_trade_id", "bars")  # fmt: skip
                for name, value in zip(names, row[1:], strict=True):
                    assert (Decimal(candle[name]) if isinstance(candle[name], str) else candle[name]) == value, name
                    if isinstance(value, Decimal):
                        assert candle[name] == format(value, "f")
        assert app.state.rollups.hits > 0 and app.state.rollups.misses == 2  # one per partition, then reused


def test_a_non_loopback_bind_needs_a_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from api.__main__ import loopback, main

    monkeypatch.delenv("API_KEY", raising=False)
    assert main(["--host", "0.0.0.0"]) == 2
    assert "0.0.0.0 is not a loopback address: set API_KEY" in capsys.readouterr().err
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost") and not loopback("10.0.0.5")
