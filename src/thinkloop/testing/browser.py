"""Headless Chromium for the viewer's tests, benchmark and screenshot, driven through Playwright.

Playwright's own browser download is not reachable on the machines we run on, so this drives the system
Chromium (Debian's ``chromium`` package, which ``.ci/run`` installs) with flags that keep it from calling
home: no background networking, component updates, sync or first-run pages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
)


def chromium_path() -> str | None:
    """The system Chromium: ``$THINKLOOP_CHROMIUM``, ``/usr/bin/chromium``, or one on ``PATH``."""
    for candidate in (os.environ.get("THINKLOOP_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Any) -> Any:
    """Launch headless system Chromium with Playwright (``sync_playwright()`` or ``async_playwright()``)."""
    path = chromium_path()
    if path is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium, or set THINKLOOP_CHROMIUM")
    return playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS), headless=True)
