"""Headless Debian chromium through Playwright's Python API (its own browser download is not
used: it is unreachable here and CI installs chromium with apt)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("ISHOWTTS_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def available() -> bool:
    return shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM)


# For tests that drive it. Under CI a missing browser is a failure, not a skip (.ci/run
# installs it).
needed = pytest.mark.skipif(
    not available() and not os.getenv("CI"),
    reason=f"{CHROMIUM} is not installed (apt-get install chromium)",
)


@contextlib.asynccontextmanager
async def launch(sink: str | None = None) -> AsyncIterator[Browser]:
    """A headless chromium; with ``sink``, its pages play sound into that PulseAudio sink (of
    the server ``$PULSE_SERVER`` names) without waiting for a click."""
    sound = sink is not None
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*FLAGS, "--autoplay-policy=no-user-gesture-required"] if sound else FLAGS,
            ignore_default_args=["--mute-audio"] if sound else None,
            env={**os.environ, "PULSE_SINK": sink} if sink is not None else None,
        )
        try:
            yield browser
        finally:
            await browser.close()
