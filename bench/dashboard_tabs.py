"""Is the live Market page still responsive with several browser tabs open?

    .venv/bin/python bench/dashboard_tabs.py [--tabs 1,4,8] [--seconds 30] [--shot bench/live_market.png]

Starts the live stack (`python -m infra.live`, demo market, 1 s refresh) in a temporary
folder, then opens N tabs of the Market page (1-second candles, last 15 minutes) in Debian's
Chromium driven by Playwright. For each N, over `--seconds`:

- chart updates per tab per second: each tab counts how often its chart shows new data;
- interaction latency in the first tab: the time from picking another timeframe to the chart
  showing that timeframe's candles (5 tries, alternating 1s and 5s);
- CPU share (of one core) of the dashboard's server and of the browser.

Prints a table; `--shot` saves a screenshot of the first tab with its provisional candles.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from common import free_port
from live import group_cpu_s
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.settings import REPO_ROOT

# Counts how often the chart shows new data: a signature of every trace's length, last time and
# last close, sampled every 100 ms (Streamlit may replace the chart element, so no Plotly hook).
COUNT_UPDATES = """() => {
  window.__updates = 0; let last = null;
  setInterval(() => {
    const p = document.querySelector('.js-plotly-plot'); if (!p || !p.data) return;
    const sig = JSON.stringify(p.data.map(t => {
      const n = t.x ? t.x.length : 0;
      return [n, n ? t.x[n - 1] : null, t.close && n ? t.close[n - 1] : null, t.y && n ? t.y[n - 1] : null];
    }));
    if (sig !== last) { if (last !== null) window.__updates++; last = sig; }
  }, 100);
}"""
TRACES = "() => Array.from(document.querySelector('.js-plotly-plot').data, t => [t.name, (t.x || []).length])"


def browser_cpu_s() -> float:
    """CPU seconds of every chromium process (Playwright starts its own browser)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(chromium" in text or "(chrome" in text:
            total += sum(int(x) for x in text.rsplit(")", 1)[1].split()[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def pick_timeframe(page: Any, option: str) -> float:
    """Seconds from picking `option` to the chart drawing that timeframe's candles."""
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    before = page.evaluate(TRACES)[0][1]
    start = time.perf_counter()
    try:
        page.get_by_role("combobox", name="Timeframe").click(timeout=30_000)
        page.get_by_role("option", name=option, exact=True).click(timeout=30_000)
    except PlaywrightTimeout:
        return float("inf")  # the page did not take the click within 30 s
    deadline = start + 30
    while time.perf_counter() < deadline:
        try:
            if page.evaluate(TRACES)[0][1] != before:
                return time.perf_counter() - start
        except Exception:  # the chart is being replaced
            pass
        time.sleep(0.02)
    return float("inf")


def measure(context: Any, url: str, tabs: int, seconds: float, dashboard_pid: int) -> dict[str, float]:
    pages = []
    for _ in range(tabs):
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=90_000)
        if pick_timeframe(page, "1s") == float("inf"):
            print("  a new tab did not take the 1s timeframe within 30 s", flush=True)
        page.evaluate(COUNT_UPDATES)
        pages.append(page)
    time.sleep(3)
    for page in pages:
        page.evaluate("() => { window.__updates = 0; }")
    cpu_server, cpu_browser, t0 = group_cpu_s(dashboard_pid), browser_cpu_s(), time.time()
    time.sleep(seconds)
    wall = time.time() - t0
    redraws = [page.evaluate("() => window.__updates") / wall for page in pages]
    server = (group_cpu_s(dashboard_pid) - cpu_server) / wall
    browser = (browser_cpu_s() - cpu_browser) / wall
    latencies = [pick_timeframe(pages[0], option) for option in ("5s", "1s", "5s", "1s", "5s")]
    latencies.sort()
    for page in pages[1:]:
        page.close()
    return {
        "tabs": tabs, "redraws_per_s": statistics.mean(redraws), "min_redraws_per_s": min(redraws),
        "pick_p50_s": latencies[len(latencies) // 2], "pick_max_s": latencies[-1],
        "server_cpu": server, "browser_cpu": browser,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--shot", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: make chromium")

    with tempfile.TemporaryDirectory(prefix="bench-tabs-") as tmp:
        work = Path(tmp)
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "KAFKA_HOME": str(work / "kafka"),
            "LAKE_PATH": str(work / "lake"), "CHECKPOINT_PATH": str(work / "checkpoints"),
            "LIVE_HOME": str(work / "live"), "DASHBOARD_PORT": str(port),
            "XDG_CONFIG_HOME": str(work / "config"), "XDG_CACHE_HOME": str(work / "cache"),
        }  # fmt: skip
        os.environ.update({k: env[k] for k in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME")})
        out = (work / "live.out").open("w")
        stack = subprocess.Popen([sys.executable, "-m", "infra.live", "--status-every", "5"], cwd=REPO_ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        print(f"live stack (demo market) starting; logs in {work}/live/logs", flush=True)
        try:
            deadline = time.monotonic() + 400
            while not re.search(r"newest final bar ([0-9]|[12][0-9])(\.\d)? s", (work / "live.out").read_text()):
                if time.monotonic() > deadline or stack.poll() is not None:
                    raise SystemExit(f"the live stack did not come up:\n{(work / 'live.out').read_text()}")
                time.sleep(1)
            dashboard_pid = orjson.loads((work / "live" / "pids.json").read_bytes())["dashboard"]
            results = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                for tabs in (int(n) for n in args.tabs.split(",")):
                    print(f"  {tabs} tab(s): measuring {args.seconds:.0f} s", flush=True)
                    results.append(measure(context, f"http://127.0.0.1:{port}", tabs, args.seconds, dashboard_pid))
                    print(f"  {results[-1]}", flush=True)
                    if args.shot and len(results) == 1:
                        first = context.pages[0]
                        names = [name for name, _n in first.evaluate(TRACES)]
                        print(f"  traces in the chart: {names}")
                        first.screenshot(path=str(args.shot), full_page=True)
                    for page in context.pages:
                        page.close()
                browser.close()
        finally:
            stack.terminate()
            stack.wait(180)
            out.close()
    print("\n| tabs | chart updates per tab per s (mean / slowest tab) | pick a timeframe -> chart, p50 / max | "
          "dashboard server CPU | browser CPU |\n|---|---|---|---|---|")  # fmt: skip
    for r in results:
        print(f"| {r['tabs']:.0f} | {r['redraws_per_s']:.2f} / {r['min_redraws_per_s']:.2f} | "
              f"{r['pick_p50_s']:.2f} / {r['pick_max_s']:.2f} s | {100 * r['server_cpu']:.0f}% | "
              f"{100 * r['browser_cpu']:.0f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
