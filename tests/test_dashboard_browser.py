"""The dashboard in a real browser: every page loads, pickers change the charts, no exceptions.

Also against a lake the real pipeline is still writing (replay -> Kafka -> job): the newest bar
advances on screen without a reload.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lake.settings import REPO_ROOT
from tests.browser import ARTIFACTS, browser_page, streamlit_server
from tests.conftest import job_args, start_job, stop_job
from tests.dashboard_lake import build
from tests.kafka_helpers import fresh_topics

pytestmark = pytest.mark.integration

CHART = '[data-testid="stPlotlyChart"]'
ERROR = '[data-testid="stException"]'


def _candle_count(page: Any) -> int:
    return int(page.evaluate("document.querySelector('.js-plotly-plot').data[0].x.length"))


def _wait_for_count(page: Any, expected: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        try:
            count = _candle_count(page)
        except Exception:  # the chart is being redrawn
            count = -1
        if count == expected:
            return
        time.sleep(0.3)
    raise AssertionError(f"the chart shows {count} candles, expected {expected}")


def _pick(page: Any, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_every_page_in_a_real_browser(tmp_path: Path) -> None:
    lake = build(tmp_path / "lake")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(lake, tmp_path) as url, browser_page(tmp_path) as page:
        page.goto(url)  # type: ignore[attr-defined]
        page.wait_for_selector(CHART, timeout=60_000)  # type: ignore[attr-defined]
        _wait_for_count(page, 15)  # last 15 minutes, 1-minute candles
        page.screenshot(path=str(ARTIFACTS / "market.png"), full_page=True)  # type: ignore[attr-defined]
        _pick(page, "Symbol", "CCCUSDT")
        page.get_by_text("candles of binance CCCUSDT").wait_for(timeout=30_000)  # type: ignore[attr-defined]
        _pick(page, "Timeframe", "5s")
        _wait_for_count(page, 180)
        page.screenshot(path=str(ARTIFACTS / "market-5s.png"), full_page=True)  # type: ignore[attr-defined]
        assert page.locator(ERROR).count() == 0  # type: ignore[attr-defined]
        for path, charts in (("compare", 2), ("health", 4), ("sql", 0), ("predictions", 0)):
            page.goto(f"{url}/{path}")  # type: ignore[attr-defined]
            page.get_by_role("heading").first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
            if charts:
                page.wait_for_function(  # type: ignore[attr-defined]
                    f"document.querySelectorAll('{CHART}').length >= {charts}", timeout=60_000
                )
            else:
                page.wait_for_timeout(1500)  # type: ignore[attr-defined]
            page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)  # type: ignore[attr-defined]
            assert page.locator(ERROR).count() == 0, path  # type: ignore[attr-defined]


def _newest_caption(page: Any) -> str:
    text = page.get_by_text("newest bar ends").first.inner_text(timeout=60_000)
    return str(text).rsplit("newest bar ends", 1)[1]


def test_the_newest_bar_advances_while_the_pipeline_writes(kafka: str, tmp_path: Path) -> None:
    settings = fresh_topics(kafka, tmp_path)
    lake = tmp_path / "lake"
    job = start_job(*job_args(kafka, settings, lake, tmp_path / "checkpoints", "1 second"))
    replay = threading.Thread(
        target=subprocess.run,
        args=([sys.executable, "-m", "ingest", "replay", str(REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"),
               "--topic", settings.kafka_topic, "--bootstrap-servers", kafka, "--speed", "4"],),
        kwargs={"capture_output": True, "timeout": 300},
    )  # fmt: skip
    try:
        replay.start()  # ~90 s of real trades at 4x
        deadline = time.monotonic() + 180
        while not (lake / "_progress").is_dir() and time.monotonic() < deadline:
            time.sleep(1)  # the job is up
        with streamlit_server(lake, tmp_path) as url, browser_page(tmp_path) as page:
            page.goto(url)  # type: ignore[attr-defined]
            try:  # the page may open on an empty lake, then re-runs itself once bars land
                page.wait_for_selector(CHART, timeout=120_000)  # type: ignore[attr-defined]
            finally:
                page.screenshot(path=str(ARTIFACTS / "market-live-start.png"), full_page=True)  # type: ignore[attr-defined]
            first = _newest_caption(page)
            seen = [first]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(set(seen)) < 3:
                time.sleep(2)  # the page refreshes itself every second (no reload here)
                seen.append(_newest_caption(page))
            page.screenshot(path=str(ARTIFACTS / "market-live.png"), full_page=True)  # type: ignore[attr-defined]
            assert page.locator(ERROR).count() == 0  # type: ignore[attr-defined]
            assert len(set(seen)) >= 3, f"the newest bar did not advance: {seen}"
            assert sorted(set(seen)) == list(dict.fromkeys(seen)), "the newest bar went backwards"
    finally:
        stop_job(job)
        replay.join(300)
