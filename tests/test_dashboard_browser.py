"""The dashboard in a real browser: every page loads, pickers change the charts, no exceptions.

The live case (the whole `make live` stack, provisional candles, the newest bar advancing
without a reload) is in tests/test_make_live.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTIFACTS, browser_page, streamlit_server
from tests.support.dashboard_lake import build

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
