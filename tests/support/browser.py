"""A real browser on a real Streamlit server: Debian's chromium driven by Playwright (no download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.settings import REPO_ROOT
from tests.support.ports import free_port

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


@contextmanager
def streamlit_server(lake: Path, home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "app.py"),
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        env={**os.environ, "LAKE_PATH": str(lake), "HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read() if proc.stdout else ""
                    raise RuntimeError(f"streamlit did not start: {output}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed: apt-get install -y chromium (.ci/run does)")
    return path


@contextmanager
def browser_page(home: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("XDG_CONFIG_HOME", str(home / "config"))
    os.environ.setdefault("XDG_CACHE_HOME", str(home / "cache"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        finally:
            browser.close()
