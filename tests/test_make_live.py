"""`make live`: the supervisor's rules, then the whole live system (demo source) for real."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.settings import REPO_ROOT
from infra.live import sources
from infra.live_status import Reading, age, status_line
from infra.supervisor import Backoff, Component, Supervisor, group_alive
from tests.support.browser import ARTIFACTS, browser_page
from tests.support.ports import free_port


def test_sources_default_to_the_demo_and_name_what_is_wrong() -> None:
    assert [c.name for c in sources([])] == ["ingest-demo"]
    both = sources(["binance:BTCUSDT,ETHUSDT", "coinbase:BTC-USD"])
    assert [c.argv[-4:] for c in both] == [
        ["--exchange", "binance", "--symbols", "BTCUSDT,ETHUSDT"],
        ["--exchange", "coinbase", "--symbols", "BTC-USD"],
    ]
    assert sources(["synth:5000"])[0].argv[4:8] == ["--rate", "5000", "--symbols", "10"]
    with pytest.raises(ValueError, match=r"unknown source 'kraken:XBTUSD'.*binance, coinbase"):
        sources(["kraken:XBTUSD"])
    with pytest.raises(ValueError, match="unknown source 'binance'"):
        sources(["binance"])


def test_make_live_passes_the_sources() -> None:
    dry = subprocess.run(
        ["make", "-n", "live", "EXCHANGE=binance", "SYMBOLS=BTCUSDT,ETHUSDT"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "-m infra.live  --source binance:BTCUSDT,ETHUSDT" in dry.stdout
    dry = subprocess.run(["make", "-n", "live", "SOURCES=demo synth:500"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert "-m infra.live --source demo --source synth:500" in dry.stdout


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=1, max_s=8)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_ages_read_as_a_person_says_them() -> None:
    assert [age(x) for x in (0.42, 18.2, 185, 7800, 3 * 86400 + 4 * 3600 + 5)] == [
        "0.4 s", "18 s", "3 min 5 s", "2 h 10 min", "3 d 4 h",
    ]  # fmt: skip
    line = status_line(Reading(48.0, 17.9, None), {"job": "up 1 min"})
    assert "in 48 rec/s | newest final bar 18 s | newest live bar - | job up 1 min" in line


def test_a_dying_component_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    events: list[str] = []
    supervisor = Supervisor(tmp_path, events.append, Backoff(initial_s=0.2, max_s=0.4, reset_after_s=30))
    supervisor.start(Component("flaky", [sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"]))
    deadline = time.monotonic() + 20
    while sum("restarted" in e for e in events) < 3 and time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.05)
    supervisor.stop_all([])
    exits = [e for e in events if "exited" in e]
    assert "flaky exited with code 3" in exits[0]
    assert [re.search(r"restarting in (\S+) s", e)[1] for e in exits[:3]] == ["0", "0", "0"]  # type: ignore[index]
    assert supervisor.running["flaky"].total_restarts >= 3
    assert (tmp_path / "flaky.log").read_text().count("hi") >= 3


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, lambda _line: None)
    # A parent that ignores SIGTERM and a child that sleeps: both must be gone after stop.
    code = "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
           "subprocess.Popen(['sleep', '300']); time.sleep(300)"  # fmt: skip
    supervisor.start(Component("stubborn", [sys.executable, "-c", code], stop_timeout_s=1))
    time.sleep(0.5)
    pid = supervisor.pid("stubborn")
    assert pid is not None
    supervisor.stop_all(["stubborn"])
    assert not group_alive(pid)


CHART, ERROR = '[data-testid="stPlotlyChart"]', '[data-testid="stException"]'
TRACE_NAMES = "Array.from(document.querySelector('.js-plotly-plot').data, t => t.name)"


def _newest_caption(page: Any) -> str:
    return str(page.get_by_text("newest bar ends").first.inner_text(timeout=60_000)).rsplit("newest bar ends", 1)[1]


def watch_the_market_page(page: Any, url: str) -> None:
    """In a real browser, without a reload: the chart appears (the page may open before the first final bar
    and re-runs itself), the forming candles are drawn as their own trace, and the newest bar advances."""
    page.goto(url)
    try:
        page.wait_for_selector(CHART, timeout=150_000)
        deadline = time.monotonic() + 60
        while "provisional" not in page.evaluate(TRACE_NAMES) and time.monotonic() < deadline:
            time.sleep(1)
        assert "provisional" in page.evaluate(TRACE_NAMES)
        seen = [_newest_caption(page)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(set(seen)) < 3:
            time.sleep(2)
            seen.append(_newest_caption(page))
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "market-make-live.png"), full_page=True)
    assert page.locator(ERROR).count() == 0
    assert len(set(seen)) >= 3, f"the newest bar did not advance: {seen}"
    assert sorted(set(seen)) == list(dict.fromkeys(seen)), "the newest bar went backwards"


def api_sees_the_bars(api: str) -> None:
    """The API started by make live serves the lake's markets and their newest final bar."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{api}/v1/symbols", timeout=10) as r:
                markets = json.load(r)["markets"]
        except OSError:
            markets = []
        if markets:
            break
        assert time.monotonic() < deadline, "the API lists no markets"
        time.sleep(1)
    m = markets[0]
    with urllib.request.urlopen(f"{api}/v1/latest?exchange={m['exchange']}&symbol={m['symbol']}", timeout=10) as r:
        latest = json.load(r)
    assert latest["final"] is not None and isinstance(latest["final"]["close"], str)


@pytest.mark.integration
def test_make_live_comes_up_restarts_a_killed_component_and_stops_clean(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "KAFKA_HOME": str(tmp_path / "kafka"),
        "LAKE_PATH": str(tmp_path / "lake"), "CHECKPOINT_PATH": str(tmp_path / "checkpoints"),
        "LIVE_HOME": str(tmp_path / "live"), "DASHBOARD_PORT": str(free_port()), "STREAM_TRIGGER": "2 seconds",
        "API_PORT": str(free_port()),
    }  # fmt: skip
    cmd = [sys.executable, "-m", "infra.live", "--status-every", "2"]
    live = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(live.stdout or []), daemon=True).start()

    def wait_for(pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if m := re.search(pattern, line):
                    return m
            assert live.poll() is None, "".join(lines)
            time.sleep(0.5)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")

    pids_seen: set[int] = set()
    try:
        wait_for(r"^dashboard +http://127\.0\.0\.1:\d+", 30)
        wait_for(r"^logs +.*/live/logs", 5)
        # Live bars flow within a second of their trades; then the job lands final bars.
        wait_for(r"newest live bar \d+\.\d s", 120)
        port = env["DASHBOARD_PORT"]
        with browser_page(tmp_path) as page:
            watch_the_market_page(page, f"http://127.0.0.1:{port}")  # opened while the lake may be empty
        wait_for(r"newest final bar \d+(\.\d)? s", 180)
        wait_for(r"^api +http://127\.0\.0\.1:\d+/docs", 5)
        api_sees_the_bars(f"http://127.0.0.1:{env['API_PORT']}")
        # A second `make live` refuses while this one runs.
        second = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "make live is already running (pid" in second.stderr, second.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as health:
            assert health.status == 200
        # Kill a component: the supervisor reports it and starts it again.
        pids = json.loads((tmp_path / "live" / "pids.json").read_text())
        pids_seen |= {p for p in pids.values() if p}
        os.kill(pids["live_bars"], signal.SIGKILL)
        wait_for(r"live_bars exited with code -9 .*restarting in 1 s", 20)
        wait_for(r"live_bars restarted \(restart 1\)", 20)
        new = json.loads((tmp_path / "live" / "pids.json").read_text())
        assert new["live_bars"] and new["live_bars"] != pids["live_bars"]
        pids_seen |= {p for p in new.values() if p}
        wait_for(r"live_bars up \d+ s, 1 restarts", 20)
    finally:
        live.send_signal(signal.SIGTERM)
        assert live.wait(120) == 0, "".join(lines)
    assert "live: everything stopped" in "".join(lines)
    time.sleep(1)
    for pid in pids_seen:
        assert not group_alive(pid)  # the component and everything it started are gone
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout
