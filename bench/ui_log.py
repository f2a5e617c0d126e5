"""Benchmark: the deployment page with a long log, in Debian's chromium (Playwright).

A real dispatcher (embedded, SQLite, process launcher) holds a deployment with --lines log
lines (one in ten a carriage-return progress line). Chromium opens its page with a signed link;
printed: the time from navigation to the last line in the page, the time a search over all
lines takes, and the time to clear it (both measured inside the page). A measurement, not a
test: nothing here asserts a duration.

    PYTHONPATH=. .venv/bin/python bench/ui_log.py [--lines 10000]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from dispatcher import embedded
from dispatcher import settings as dispatcher_settings
from dispatcher.core.ports import NewEvent
from dispatcher.model import TERMINAL
from dispatcher.ui import links
from runner.events import utc_now

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SEARCH_JS = """() => { const s = document.getElementById('log-search');
  const t0 = performance.now();
  s.value = 'line 9'; s.dispatchEvent(new Event('input'));
  document.body.offsetHeight; const t1 = performance.now();
  s.value = ''; s.dispatchEvent(new Event('input'));
  document.body.offsetHeight; return [t1 - t0, performance.now() - t1]; }"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forge-ui-bench-"))
    (root / "builds").mkdir()
    env = {
        "FORGE_HOOK_SECRET": secrets.token_urlsafe(32),
        "FORGE_BUILDS_ROOT": str(root / "builds"),
        "FORGE_DATABASE_URL": f"sqlite:///{root / 'dispatcher.db'}",
        "FORGE_STATE_DIR": str(root / "state"),
        "FORGE_LAUNCHER": "process",
    }
    try:
        settings = dispatcher_settings.load(env)
        with embedded.running(settings) as (dispatcher, url):
            store = dispatcher.store
            dep, _ = store.submit("bench-log", "bench-log", str(root / "builds" / "none"), None)
            dispatcher.cancel(dep.id)  # it stays a row: the lines are added below
            while (current := store.get(dep.id)) is None or current.status not in TERMINAL:
                time.sleep(0.1)
            batch = [
                NewEvent(
                    current.attempt,
                    "log",
                    utc_now(),
                    {
                        "level": "info",
                        "message": (
                            f"\rupload {i % 100}%" if i % 10 == 9 else f"line {i}: " + "x" * 60
                        ),
                    },
                )
                for i in range(args.lines)
            ]
            last = store.append_events(dep.id, batch)[-1].id
            link = links.mint(settings.hook.secret, url, links.target_for(dep.id), time.time())
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(link)
                page.wait_for_selector(f"#L{last}, [data-ids~='{last}']", state="attached",
                                       timeout=300_000)  # fmt: skip
                rendered_ms = page.evaluate("performance.now()")
                shown = page.evaluate("document.querySelectorAll('#log li').length")
                search_ms, clear_ms = page.evaluate(SEARCH_JS)
                browser.close()
        report = {
            "lines": args.lines,
            "rows_shown": shown,
            "last_line_ms": round(rendered_ms),
            "search_ms": round(search_ms),
            "clear_search_ms": round(clear_ms),
        }
        print(f"log lines stored                 {args.lines}")
        print(f"rows in the page                 {shown}  (progress lines rewritten in place)")
        print(f"navigation -> last line shown    {rendered_ms:8.0f} ms")
        print(f"search over every line           {search_ms:8.0f} ms")
        print(f"clear the search                 {clear_ms:8.0f} ms")
        print(json.dumps(report))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
