"""`GET /v1/trades`: one market's ticks in a range, keyset-paged, as JSON, CSV, Parquet or Arrow.

The lake holds trades around a UTC midnight (`tests.support.trades_lake`), squeezed into 0.7 s
so that many share an event_time millisecond, with trade ids shuffled against time. Every answer
is held against the trades as written (Python rows and decimals, no DuckDB): the exact digits
of price and quantity, the (event_time, trade_id) order, and every row of a range exactly once
however it is paged.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import itertools
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import lake
from api import queries, schemas
from api import trades as pages
from api.app import create_app
from api.lake_access import take_snapshot
from api.responses import stream_response
from core.settings import Settings
from tests.support.lake_builder import SinkLake, ohlc_rows
from tests.support.plans import parquet_scans
from tests.support.trades_lake import MIDNIGHT, SYMBOL, trade_records, trade_rows, trades_lake

MARKET = {"exchange": "binance", "symbol": SYMBOL}
# Around midnight: the trades fall in [MIDNIGHT - 350 ms, MIDNIGHT + 350 ms).
START, END = MIDNIGHT - dt.timedelta(seconds=1), MIDNIGHT + dt.timedelta(seconds=1)
RANGE = {**MARKET, "start": "2026-03-01T23:59:59Z", "end": "2026-03-02T00:00:01Z"}  # START, END
EIGHT = Decimal("1E-8")


def settings_for(folder: Path, **overrides: Any) -> Settings:
    return Settings().with_overrides(lake_path=str(folder), kafka_bootstrap_servers="127.0.0.1:9", **overrides)


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The lake, and its trades as written (lake/trades rows)."""
    folder = tmp_path_factory.mktemp("trades-api") / "lake"
    return folder, trade_rows(trades_lake(folder, trade_records(span_ms=700)))


@pytest.fixture(scope="module")
def client(ticks: tuple[Path, list[dict[str, Any]]]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(ticks[0]))) as c:
        yield c


def expected(
    rows: list[dict[str, Any]], start: dt.datetime = START, end: dt.datetime = END, market: dict[str, str] = MARKET
) -> list[dict[str, Any]]:
    """The market's rows in [start, end), by (event_time, trade_id), as the JSON gives them: price
    and quantity as their digits at the lake's scale (8 places), times as datetimes."""
    chosen = [
        r
        for r in rows
        if r["exchange"] == market["exchange"] and r["symbol"] == market["symbol"] and start <= r["event_time"] < end
    ]
    return [
        {
            "event_time": r["event_time"],
            "trade_id": r["trade_id"],
            "price": format(r["price"].quantize(EIGHT), "f"),
            "quantity": format(r["quantity"].quantize(EIGHT), "f"),
            "is_buyer_maker": r["is_buyer_maker"],
            "late": r["late"],
            "ingest_time": r["ingest_time"],
            "kafka_partition": r["kafka_partition"],
            "kafka_offset": r["kafka_offset"],
        }
        for r in sorted(chosen, key=lambda r: (r["event_time"], r["trade_id"]))
    ]


def parsed(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON trades with their times parsed; decimals stay the strings they travelled as."""
    out = []
    for t in trades:
        assert isinstance(t["price"], str) and isinstance(t["quantity"], str), "money travels as strings"
        assert t["event_time"].endswith("Z") and t["ingest_time"].endswith("Z")
        out.append({**t, "event_time": iso(t["event_time"]), "ingest_time": iso(t["ingest_time"])})
    return out


def iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def get(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/trades", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert r.headers.get("x-next-cursor") == body["next"]
    return body


def page_through(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every page, following `next` with the first page's resolved start and end."""
    body = get(client, **params)
    out = [body]
    while body["next"] is not None:
        assert len(out) < 1000, "paging does not end"
        body = get(client, **{**params, "start": body["start"], "end": body["end"], "after": body["next"]})
        out.append(body)
    return out


def test_the_fixture_has_ties_and_spans_midnight(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    """What the tests below rely on: many trades per event_time, on both sides of midnight."""
    want = expected(ticks[1])
    times = [r["event_time"] for r in want]
    assert len(want) > 150 and len(set(times)) < len(times) / 2
    assert {t.date() for t in times} == {dt.date(2026, 3, 1), dt.date(2026, 3, 2)}


def test_json_is_the_rows_as_written(client: TestClient, ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    body = get(client, **RANGE, limit=1000)
    schemas.Trades.model_validate(body)  # the shape /openapi.json declares (decimal strings by their pattern)
    assert (body["start"], body["end"]) == ("2026-03-01T23:59:59Z", "2026-03-02T00:00:01Z")
    want = expected(ticks[1])
    assert body["count"] == len(want) and body["next"] is None and body["after"] is None
    assert parsed(body["trades"]) == want
    # The largest DECIMAL(18,8) and 8-place fractions survive digit for digit.
    assert "9999999999.99999999" in {t["price"] for t in body["trades"]} | {t["quantity"] for t in body["trades"]}


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_pages_hold_every_row_exactly_once(
    client: TestClient, ticks: tuple[Path, list[dict[str, Any]]], limit: int
) -> None:
    got = page_through(client, **RANGE, limit=limit)
    want = expected(ticks[1])
    assert [p["count"] for p in got[:-1]] == [limit] * (len(got) - 1) and 1 <= got[-1]["count"] <= limit
    assert [t for p in got for t in parsed(p["trades"])] == want
    if limit > 1:  # some page ends inside a run of trades of one millisecond: the cursor's trade_id splits it
        assert any(a["trades"][-1]["event_time"] == b["trades"][0]["event_time"] for a, b in itertools.pairwise(got))


def test_following_the_link_pages_a_file_format_through_the_range(
    client: TestClient, ticks: tuple[Path, list[dict[str, Any]]]
) -> None:
    url: str = "/v1/trades"
    params: dict[str, Any] | None = {**RANGE, "limit": 40, "format": "csv"}
    rows: list[dict[str, str]] = []
    for _ in range(100):
        r = client.get(url, params=params)  # following the link: its URL alone (params=None)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows += list(csv.DictReader(io.StringIO(r.text)))
        link = r.headers.get("link")
        if link is None:
            assert "x-next-cursor" not in r.headers
            break
        match = re.fullmatch(r'<(/v1/trades\?[^>]+)>; rel="next"', link)
        assert match, link
        url, params = match[1], None
    want = expected(ticks[1])
    assert [(int(r["trade_id"]), r["price"], r["quantity"]) for r in rows] == [
        (w["trade_id"], w["price"], w["quantity"]) for w in want
    ]


@pytest.mark.parametrize("limit", [25, 1000])
def test_every_format_gives_the_same_rows(client: TestClient, limit: int) -> None:
    params: dict[str, Any] = {**RANGE, "limit": limit}
    body = get(client, **params)
    files = {kind: client.get("/v1/trades", params={**params, "format": kind}) for kind in ("csv", "parquet", "arrow")}
    for kind, r in files.items():
        assert r.status_code == 200, r.text
        assert r.headers.get("x-next-cursor") == body["next"], kind
        assert f'filename="binance-{SYMBOL}-trades.' in r.headers["content-disposition"]
    table = pq.read_table(io.BytesIO(files["parquet"].content))
    assert table.schema == queries.TRADE_SCHEMA
    assert table.schema.field("price").type == pa.decimal128(18, 8)
    assert pa.ipc.open_stream(files["arrow"].content).read_all().equals(table)
    from_file = [
        {**row, "price": format(row["price"], "f"), "quantity": format(row["quantity"], "f")}
        for row in table.to_pylist()
    ]
    assert from_file == parsed(body["trades"])
    lines = list(csv.reader(io.StringIO(files["csv"].text)))
    assert lines[0] == list(queries.TRADE_COLUMNS)
    assert [(int(x[1]), x[2], x[3]) for x in lines[1:]] == [
        (t["trade_id"], t["price"], t["quantity"]) for t in from_file
    ]


def test_a_range_across_midnight_and_one_ending_at_it(
    client: TestClient, ticks: tuple[Path, list[dict[str, Any]]]
) -> None:
    """The date partition is the UTC date of event_time; end is exclusive at midnight too."""
    near = MIDNIGHT - dt.timedelta(milliseconds=120), MIDNIGHT + dt.timedelta(milliseconds=120)
    body = get(client, **MARKET, start=near[0].isoformat(), end=near[1].isoformat(), limit=1000)
    want = expected(ticks[1], *near)
    assert parsed(body["trades"]) == want and {r["event_time"].date() for r in want} == {
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 2),
    }
    before = get(client, **MARKET, start=near[0].isoformat(), end=MIDNIGHT.isoformat(), limit=1000)
    assert parsed(before["trades"]) == expected(ticks[1], near[0], MIDNIGHT)
    after = get(client, **MARKET, start=MIDNIGHT.isoformat(), end=near[1].isoformat(), limit=1000)
    assert parsed(after["trades"]) == expected(ticks[1], MIDNIGHT, near[1])
    assert before["count"] + after["count"] == len(want) and before["count"] > 0 and after["count"] > 0


def scans(folder: Path, sql: str, params: list[Any]) -> list[str]:
    return [scan["Scanning Files"] for scan in parquet_scans(lake.connect(folder), sql, params)]


def test_the_queries_read_only_the_date_partitions_in_range(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    """lake/trades: 3 commits x (2 symbols x 2 dates) = 12 files; a market's day is 3 of them. (At
    the default page size: under DuckDB's late_materialization_max_rows a top-N also fetches its
    other columns in a second scan, by row number, of the same files.)"""
    folder = ticks[0]
    day = pages.TradeRange(START, MIDNIGHT, START, (START - dt.timedelta(microseconds=1), 0))
    assert day.days == (dt.date(2026, 3, 1), dt.date(2026, 3, 1))  # end at midnight: not the next day
    key = (MIDNIGHT - dt.timedelta(milliseconds=1), 0)
    one_day = queries.trades_params("binance", SYMBOL, START, day.after, key, pages.DEFAULT_PAGE)
    assert scans(folder, queries.TRADES, one_day) == ["3/12"]
    two_days = queries.trades_params("binance", SYMBOL, START, day.after, (MIDNIGHT, 0), pages.DEFAULT_PAGE)
    assert scans(folder, queries.TRADES, two_days) == ["6/12"]
    keys = ["binance", SYMBOL, dt.date(2026, 3, 2), START, END, *day.after, 10]
    assert scans(folder, queries.TRADE_KEYS, keys) == ["3/12"]


def test_a_page_reads_the_keys_of_the_days_it_needs_only(
    ticks: tuple[Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = take_snapshot(ticks[0])
    snap.con.close()
    assert snap.trade_days == {s: (dt.date(2026, 3, 1), dt.date(2026, 3, 2)) for s in (SYMBOL, "BBBUSDT")}
    days_read: list[dt.date] = []
    real = queries.trade_keys

    def spy(cur: Any, exchange: str, symbol: str, day: dt.date, *rest: Any) -> pa.Table:
        days_read.append(day)
        return real(cur, exchange, symbol, day, *rest)

    monkeypatch.setattr(queries, "trade_keys", spy)
    con = lake.connect(ticks[0])
    span = pages.resolve(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), END, None, END)  # two months, two days of trades
    days = (*snap.trade_days[SYMBOL], dt.date(2026, 3, 3))  # and one after the range
    want = expected(ticks[1])
    first = pages.page_end(con, "binance", SYMBOL, days, span, 5)
    assert first == pages.PageEnd((want[4]["event_time"], want[4]["trade_id"]), True)
    assert days_read == [dt.date(2026, 3, 1)]  # filled on the first day: the second is not read
    days_read.clear()
    whole = pages.page_end(con, "binance", SYMBOL, days, span, len(want))
    assert whole == pages.PageEnd((want[-1]["event_time"], want[-1]["trade_id"]), False)
    assert days_read == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]  # not 03-03: after the range
    # Full exactly at the end of a day: the next day's first key only says that more follow.
    on_first_day = sum(1 for w in want if w["event_time"] < MIDNIGHT)
    split = pages.page_end(con, "binance", SYMBOL, days, span, on_first_day)
    assert split == pages.PageEnd((want[on_first_day - 1]["event_time"], want[on_first_day - 1]["trade_id"]), True)


def test_defaults_the_newest_minute_and_a_cursor_alone_reads_on_from_it(
    client: TestClient, ticks: tuple[Path, list[dict[str, Any]]]
) -> None:
    """The newest final bar of the market ends at 00:00:01 (its trades end at 00:00:00.35)."""
    body = get(client, **MARKET)
    end = MIDNIGHT + dt.timedelta(seconds=1)
    assert (iso(body["start"]), iso(body["end"])) == (end - pages.DEFAULT_WINDOW, end)
    assert body["limit"] == pages.DEFAULT_PAGE
    want = expected(ticks[1], end - pages.DEFAULT_WINDOW, end)
    assert parsed(body["trades"]) == want
    middle = want[len(want) // 2]
    cursor = pages.encode_cursor((middle["event_time"], middle["trade_id"]))
    tail = get(client, **MARKET, after=cursor)
    assert iso(tail["start"]) == middle["event_time"] and tail["after"] == cursor
    assert parsed(tail["trades"]) == want[len(want) // 2 + 1 :]
    last = pages.encode_cursor((want[-1]["event_time"], want[-1]["trade_id"]))
    assert get(client, **MARKET, after=last)["trades"] == []  # read to the end: nothing new, not an error
    beyond = get(client, **MARKET, after=f"{int(end.timestamp()) * 10**6 + 5}_1")  # past end: an empty range
    assert beyond["trades"] == [] and beyond["next"] is None and beyond["start"] == beyond["end"]


def test_the_default_page_is_capped_by_api_max_rows(ticks: tuple[Path, list[dict[str, Any]]]) -> None:
    with TestClient(create_app(settings_for(ticks[0], api_max_rows=30))) as c:
        body = c.get("/v1/trades", params=RANGE).json()
        assert body["limit"] == 30 and body["count"] == 30 and body["next"] is not None
        over = c.get("/v1/trades", params={**RANGE, "limit": 31})
        assert over.status_code == 422 and "limit: Input should be less than or equal to 30" in over.json()["detail"]


def test_an_empty_range_gives_typed_empty_answers(client: TestClient) -> None:
    quiet = {**MARKET, "start": "2026-03-01T23:00:00Z", "end": "2026-03-01T23:30:00Z"}
    body = get(client, **quiet)
    assert body["trades"] == [] and body["count"] == 0 and body["next"] is None
    assert client.get("/v1/trades", params={**quiet, "format": "csv"}).text.splitlines() == [
        ",".join(f'"{c}"' for c in queries.TRADE_COLUMNS)
    ]
    table = pq.read_table(io.BytesIO(client.get("/v1/trades", params={**quiet, "format": "parquet"}).content))
    assert table.num_rows == 0 and table.schema == queries.TRADE_SCHEMA


def test_a_lake_without_trades_answers_empty(tmp_path: Path) -> None:
    """A lake written before lake/trades existed: the market is there (its bars), its ticks are not."""
    SinkLake(tmp_path / "lake").write_batch(ohlc_rows("XYZUSDT", MIDNIGHT, 5))
    with TestClient(create_app(settings_for(tmp_path / "lake"))) as c:
        body = get(c, exchange="binance", symbol="XYZUSDT")
        assert body["trades"] == [] and body["end"] == "2026-03-02T00:00:05Z"


@pytest.mark.parametrize(
    "params,status,words",
    [
        ({"exchange": "binance", "symbol": "NOPEUSDT"}, 404, "no bars of binance:NOPEUSDT"),
        ({"exchange": "kraken", "symbol": SYMBOL}, 404, "no bars of kraken:AAAUSDT"),
        ({**RANGE, "start": RANGE["end"]}, 400, "must be before end"),
        ({**MARKET, "start": "2026-03-02T00:00:05Z"}, 400, "must be before end"),  # after the newest bar
        ({**MARKET, "end": "2300-01-01T00:00:00Z"}, 400, "outside 1970..2199"),
        ({**MARKET, "after": "yesterday"}, 422, "after: String should match pattern"),
        ({**MARKET, "after": "1772409600000000"}, 422, "after: String should match pattern"),
        ({**MARKET, "after": "9999999999999999999_1"}, 400, "after: the cursor's time is outside 1970..2199"),
        ({**MARKET, "after": "1772409600000000_9999999999999999999"}, 400, "not a 64-bit integer"),
        ({**MARKET, "limit": 0}, 422, "limit: Input should be greater than or equal to 1"),
        ({**MARKET, "format": "xlsx"}, 422, "format: Input should be"),
        ({"symbol": SYMBOL}, 422, "exchange: Field required"),
    ],
)
def test_refusals_say_why(client: TestClient, params: dict[str, Any], status: int, words: str) -> None:
    r = client.get("/v1/trades", params=params)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


@pytest.mark.parametrize(
    "key",
    [
        (MIDNIGHT, 0),
        (MIDNIGHT - dt.timedelta(microseconds=1), 2**63 - 1),
        (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), -(2**63)),
        (dt.datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC), 7),
    ],
)
def test_a_cursor_round_trips_its_key_exactly(key: tuple[dt.datetime, int]) -> None:
    text = pages.encode_cursor(key)
    assert re.fullmatch(pages.CURSOR_PATTERN, text)
    assert pages.decode_cursor(text) == key


@pytest.mark.parametrize("kind", ["csv", "parquet", "arrow"])
def test_files_are_sent_a_batch_at_a_time(kind: str) -> None:
    """What the endpoint's downloads are made by: a chunk per record batch as the reader gives it,
    then the writer's end; the cursor is released once, when the stream is done."""
    table = pa.table(
        {"n": pa.array(range(30), pa.int64()), "price": pa.array([Decimal("1.5")] * 30, pa.decimal128(18, 8))}
    )
    batches = table.to_batches(max_chunksize=10)
    closed: list[bool] = []
    response = stream_response(
        pa.RecordBatchReader.from_batches(table.schema, batches), kind, "x", {"X-Next-Cursor": "1_2"},
        lambda: closed.append(True),
    )  # fmt: skip
    assert response.headers["x-next-cursor"] == "1_2" and not closed

    async def collect() -> list[bytes]:
        return [chunk async for chunk in response.body_iterator if isinstance(chunk, bytes)]

    chunks = asyncio.run(collect())
    assert closed == [True]
    assert len([c for c in chunks if c]) >= len(batches)  # not one body at the end
    body = b"".join(chunks)
    if kind == "csv":
        assert pa_csv.read_csv(
            io.BytesIO(body), convert_options=pa_csv.ConvertOptions(column_types=table.schema)
        ).equals(table)
    elif kind == "parquet":
        assert pq.read_table(io.BytesIO(body)).equals(table)
    else:
        assert pa.ipc.open_stream(body).read_all().equals(table)
