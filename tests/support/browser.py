"""Debian's chromium driven by Playwright, one per test session (never `playwright install`:
`executable_path` is the system's /usr/bin/chromium, installed by scripts/bootstrap). One
fixture for every directory that drives it (tests/ui, tests/forgeboard): Playwright's sync API
runs one instance per thread, so two session fixtures would collide."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/bootstrap"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Loopback only: anything else the browser might fetch goes to a closed port.
            proxy={"server": "http://127.0.0.1:9", "bypass": "127.0.0.1,localhost"},
        )
        try:
            yield launched
        finally:
            launched.close()
