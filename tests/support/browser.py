"""Headless Debian chromium driven by Playwright (no browser download: `executable_path`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import BrowserContext, sync_playwright

from tests.support.tools import CHROMIUM, require_tool

CHROMIUM_FLAGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-proxy-server",  # only servers on this machine, whatever the system names
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(*extra_flags: str) -> Iterator[BrowserContext]:
    """A fresh profile in headless chromium; skipped locally when chromium is not installed."""
    executable = require_tool(CHROMIUM, "chromium", "apt-get install -y chromium (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(executable), headless=True, args=[*CHROMIUM_FLAGS, *extra_flags]
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
