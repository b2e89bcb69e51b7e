"""`python -m lake export TABLE --start --end [--symbol] [--exchange] --out FILE`: a time range to Parquet.

The lake holds trades around a UTC midnight (`tests.support.trades_lake`); the export of a range
across it is held row for row against the trades as written, in (event_time, trade_id) order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import lake
from core.schema import TRADES, to_arrow
from lake import export
from lake.cli import main
from lake.export import ExportError, TimeRange, day_query, export_range, parse_time
from tests.support.lake_builder import SinkLake, ohlc_rows
from tests.support.plans import parquet_scans
from tests.support.trades_lake import MIDNIGHT, SYMBOL, trade_rows, trades_lake

START, END = MIDNIGHT - dt.timedelta(milliseconds=1500), MIDNIGHT + dt.timedelta(milliseconds=2100)
ISO = {"start": "2026-03-01T23:59:58.500", "end": "2026-03-02T00:00:02.100Z"}  # START and END


@pytest.fixture(scope="module")
def trades(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The lake, and its trades as rows in the order an export must give them."""
    folder = tmp_path_factory.mktemp("export") / "lake"
    rows = trade_rows(trades_lake(folder))
    return folder, sorted(rows, key=lambda r: (r["event_time"], r["trade_id"], r["exchange"], r["symbol"]))


def expected(rows: list[dict[str, Any]], symbol: str | None = SYMBOL, exchange: str | None = None) -> list[Any]:
    return [
        r
        for r in rows
        if START <= r["event_time"] < END and symbol in (None, r["symbol"]) and exchange in (None, r["exchange"])
    ]


def test_a_range_across_midnight_row_for_row(trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    folder, rows = trades
    out = tmp_path / "trades.parquet"
    done = export_range(folder, TimeRange("trades", START, END, SYMBOL), out)
    want = expected(rows)
    got = pq.read_table(out)
    assert got.schema == to_arrow(TRADES)  # DECIMAL(18,8) prices and quantities, UTC microseconds, NOT NULLs
    assert got.to_pylist() == want  # Decimal equality, in (event_time, trade_id) order
    assert (done.rows, done.bytes, done.path) == (len(want), out.stat().st_size, out)
    # What the order is about is there: both dates, and trades that tie on event_time.
    assert {r["date"] for r in want} == {START.date(), END.date()}
    times = [r["event_time"] for r in want]
    assert len(set(times)) < len(times)
    meta = pq.ParquetFile(out).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}


def test_the_exchange_filter_and_every_symbol(trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    folder, rows = trades
    one = export_range(folder, TimeRange("trades", START, END, SYMBOL, "coinbase"), tmp_path / "a.parquet")
    assert pq.read_table(one.path).to_pylist() == expected(rows, exchange="coinbase")
    every = export_range(folder, TimeRange("trades", START, END), tmp_path / "b.parquet")
    assert pq.read_table(every.path).to_pylist() == expected(rows, symbol=None)
    assert {r["symbol"] for r in expected(rows, symbol=None)} == {SYMBOL, "BBBUSDT"}


def test_rows_stream_in_batches_with_progress(
    trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch by batch into the writer (a row group each), the bar told the total first."""
    monkeypatch.setattr(export, "BATCH_ROWS", 40)
    seen: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            seen.append(n)

    @contextlib.contextmanager
    def bar(total: int) -> Iterator[Bar]:
        seen.append(-total)
        yield Bar()

    done = export_range(trades[0], TimeRange("trades", START, END, SYMBOL), tmp_path / "t.parquet", progress=bar)
    assert seen[0] == -done.rows and sum(seen[1:]) == done.rows and max(seen[1:]) <= 40
    assert pq.ParquetFile(done.path).metadata.num_row_groups == len(seen) - 1 > 4


def test_each_query_reads_one_date_partition(trades: tuple[Path, list[dict[str, Any]]]) -> None:
    r = TimeRange("trades", START, END, SYMBOL)
    assert r.days() == [START.date(), END.date()]
    con = lake.connect(trades[0])
    for day in r.days():
        (scan,) = parquet_scans(con, *day_query(r, TRADES, day))
        assert f"(date = '{day}'::DATE)" in scan["File Filters"] and f"(symbol = '{SYMBOL}')" in scan["File Filters"]
        assert scan["Scanning Files"] == "3/12"  # 3 commits x (2 symbols x 2 dates)


def test_the_days_of_a_range_end_before_an_exclusive_midnight() -> None:
    r = TimeRange("trades", MIDNIGHT - dt.timedelta(hours=1), MIDNIGHT)
    assert r.days() == [(MIDNIGHT - dt.timedelta(hours=1)).date()]


def test_other_tables_export_by_their_row_time(trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    folder, _ = trades
    done = export_range(folder, TimeRange("ohlc", START, END, SYMBOL), tmp_path / "bars.parquet")
    bars = pq.read_table(done.path).to_pylist()
    order = [(b["window_start"], b["exchange"]) for b in bars]
    assert order == sorted(order) and len(order) == 2 * 4  # 23:59:58 .. 00:00:01 (58.5 is not a window_start)
    assert all(START <= b["window_start"] < END for b in bars)


def test_parse_time() -> None:
    assert parse_time("2026-03-01") == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert parse_time(ISO["start"]) == START and parse_time(ISO["end"]) == END
    assert parse_time("2026-03-02T01:00:02.1+01:00") == END
    with pytest.raises(ValueError, match="expected an ISO time"):
        parse_time("yesterday")


def run(folder: Path, *args: str) -> int:
    return main(["--lake", str(folder), "export", *args])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("trades", "--start", ISO["end"], "--end", ISO["start"]), 1, "must be before the end"),
        (("trades", "--start", ISO["start"], "--end", ISO["start"]), 1, "must be before the end"),
        (("trades", "--symbol", "ZZZUSDT", "--start", ISO["start"], "--end", ISO["end"]), 1, "no rows of trades"),
        (("trades", "--start", "2026-01-01", "--end", "2026-01-02"), 1, "no rows of trades"),
        (("late", "--start", ISO["start"], "--end", ISO["end"]), 1, "'late' is not a lake table"),
        (("rejects", "--symbol", SYMBOL, "--start", ISO["start"], "--end", ISO["end"]), 1, "no symbol column"),
        (("trades", "--symbol", SYMBOL, "--start", ISO["start"]), 2, "needs both --start and --end"),
        (("trades", "--start", ISO["start"], "--end", ISO["end"], "--where", "true"), 2, "not --where"),
        (("trades", "--start", ISO["start"], "--end", ISO["end"], "--format", "csv"), 2, "writes Parquet only"),
    ],
)
def test_errors_name_their_cause(
    trades: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    out = tmp_path / "out.parquet"
    assert run(trades[0], *args, "--out", str(out)) == code
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no file, no partial one


@pytest.mark.parametrize("args", [("nosuch",), ("trades", "--start", "noon")])
def test_argument_errors(
    trades: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(trades[0], *args, "--end", ISO["end"], "--out", "/nonexistent/x.parquet")
    assert exit_.value.code == 2
    assert ("invalid choice: 'nosuch'" if args[0] == "nosuch" else "expected an ISO time") in capsys.readouterr().err


def test_unwritable_outputs(
    trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = ("trades", "--start", ISO["start"], "--end", ISO["end"])
    assert run(trades[0], *rng, "--out", str(tmp_path / "missing" / "t.parquet")) == 1
    assert f"cannot write {tmp_path / 'missing' / 't.parquet'}: No such file or directory" in capsys.readouterr().err
    assert run(trades[0], *rng, "--out", str(tmp_path)) == 1
    assert f"cannot write {tmp_path}: it is a directory" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert run(trades[0], *rng, "--out", str(tmp_path / "file" / "t.parquet")) == 1
    assert "Not a directory" in capsys.readouterr().err


def test_a_lake_without_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SinkLake(tmp_path / "lake").write_batch(ohlc_rows(SYMBOL, START, 3))
    out = tmp_path / "t.parquet"
    assert run(tmp_path / "lake", "trades", "--start", ISO["start"], "--end", ISO["end"], "--out", str(out)) == 1
    assert f"the lake at {tmp_path / 'lake'} has no trades table" in capsys.readouterr().err
    assert not out.exists()


def test_an_interrupted_export_leaves_no_file(trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    class Bar:
        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_range(
            trades[0],
            TimeRange("trades", START, END),
            tmp_path / "t.parquet",
            progress=lambda _: contextlib.nullcontext(Bar()),
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_table_in_the_library() -> None:
    with pytest.raises(ExportError, match="'nosuch' is not a lake table"):
        export_range(Path("/nonexistent"), TimeRange("nosuch", START, END), Path("x.parquet"))


def test_python_m_lake_export(trades: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    folder, rows = trades
    out = tmp_path / "t.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "lake", "--lake", str(folder), "export", "trades", "--symbol", SYMBOL,
         "--start", ISO["start"], "--end", ISO["end"], "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    want = expected(rows)
    assert pq.read_table(out).to_pylist() == want
    summary = done.stderr.strip().splitlines()[-1]
    assert summary == (
        f"lake: exported {len(want):,} rows of trades (symbol {SYMBOL}; {START.isoformat()} <= event_time < "
        f"{END.isoformat()}) to {out} ({out.stat().st_size:,} bytes)"
    )
    assert f"100%|██████████| {len(want)}/{len(want)}" in done.stderr  # the progress bar, finished
