"""Benchmark: the deployment page with a long log against a plain `<pre>` of the same lines, in
Debian's chromium (Playwright), side by side in one run.

A real dispatcher (embedded, SQLite, process launcher) holds one deployment per size (default
5,000 and 50,000 log lines; one in ten a carriage-return progress line, one in twenty-five
coloured). The `<pre>` page is the deployment's download (`log.txt`: the same lines as text),
served by a plain HTTP server on loopback. For each size the two pages are opened in turn,
`--repeat` times; each time, measured inside the page from its navigation start:

- ready: every line is in the page and the first screen of them painted;
- last line: then scrolled to the end, the last line on screen;
- first byte: when the server began to answer (the page's share of the rest is the dispatcher
  reading the events and making the lines, which the `<pre>` server has ready).

The browser signs in through the list, as a person does, so the pages' static files (versioned
URLs, kept by the browser) are fetched by the first opening only; the dispatcher reads every
event for the first opening only too (`dispatcher.ui.history`), then only new ones. A median
is of `--repeat` openings, the first among them (with 3 or more, a later one is the median);
the first opening's figures are printed apart.

Printed: the medians, the page's over the `<pre>`'s (the ratio), and for the page how many
line elements exist (it draws the chunks near the screen) and how long a search over every
line takes to show its count (its 80 ms typing pause included). A measurement, not a test:
nothing here asserts a duration.

    PYTHONPATH=. .venv/bin/python bench/ui_log.py [--sizes 5000 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import html
import http.server
import json
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from dispatcher import embedded
from dispatcher import settings as dispatcher_settings
from dispatcher.core.ports import NewEvent
from dispatcher.model import TERMINAL
from dispatcher.ui import links, views
from dispatcher.ui.scopes import Scope
from runner.events import utc_now

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WHATS = ("ready", "last_line", "first_byte")
# Polled once a frame: first "ready", then scrolled to the end until the last line is on screen.
# Returns [ready ms, last line ms, first byte ms] (performance.now(): since the navigation
# started; the first byte: when the server began to answer).
MEASURE_JS = """([kind, lines, lastId, lastText]) => {
  const w = window;
  const inView = (r) => r.height > 0 && r.top >= 0 && r.bottom <= innerHeight;
  let last = null;
  if (kind === "pre") {
    const pre = document.querySelector("pre");
    const text = pre && pre.firstChild;
    if (!text || !text.data.endsWith(lastText + "\\n")) return false;
    last = () => { const r = document.createRange();
      r.setStart(text, text.data.length - 2); r.setEnd(text, text.data.length - 1);
      return r.getBoundingClientRect(); };
  } else {
    const count = document.getElementById("log-count");
    if (!count || count.textContent !== `${lines} lines` || !document.querySelector("#log li"))
      return false;
    last = () => { const el = document.getElementById("L" + lastId);
      return el ? el.getBoundingClientRect() : { height: 0 }; };
  }
  if (w.__ready === undefined) w.__ready = performance.now();
  if (!inView(last())) { w.scrollTo(0, document.body.scrollHeight); return false; }
  const nav = performance.getEntriesByType("navigation")[0];
  return [w.__ready, performance.now(), nav.responseStart];
}"""
SEARCH_JS = """() => new Promise((done) => {
  const s = document.getElementById("log-search"), count = document.getElementById("log-count");
  const t0 = performance.now();
  s.value = "line 9"; s.dispatchEvent(new Event("input"));
  const look = () => count.textContent.includes("match")
    ? done(performance.now() - t0) : requestAnimationFrame(look);
  look();
})"""


def message(i: int) -> str:
    if i % 10 == 9:
        return f"\rupload {i % 100}%"
    if i % 25 == 0:
        return f"\x1b[32mok\x1b[0m line {i}: \x1b[1m" + "y" * 40 + "\x1b[22m"
    return f"line {i}: " + "x" * 60


def line(attempt: int, i: int) -> NewEvent:
    return NewEvent(attempt, "log", utc_now(), {"level": "info", "message": message(i)})


class PrePages:
    """`/<n>`: a plain `<pre>` page of the text `pages[n]` (no cache, as the dispatcher's)."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.strip("/"))
                if body is None:  # the browser's /favicon.ico
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, name: str, text: str) -> str:
        body = (
            f"<!doctype html><meta charset=utf-8><title>log</title><pre>{html.escape(text)}</pre>"
        )
        self.pages[name] = body.encode()
        return f"{self.url}/{name}"


def measure(page: Page, url: str, kind: str, lines: int, last_id: int, last_text: str) -> Any:
    """[ready ms, last line ms, first byte ms] of one opening of `url`."""
    page.goto(url, wait_until="commit")
    found = page.wait_for_function(
        MEASURE_JS, arg=[kind, lines, last_id, last_text], polling="raf", timeout=600_000
    )
    return found.json_value()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
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
    pres = PrePages()
    report: list[dict[str, Any]] = []
    try:
        settings = dispatcher_settings.load(env)
        with embedded.running(settings) as (dispatcher, url):
            store, front = dispatcher.store, dispatcher.deployments
            made: list[tuple[int, str]] = []
            for size in args.sizes:
                dep, _ = store.submit(f"bench-{size}", "bench", str(root / "builds" / "x"), None)
                front.cancel(dep.id)  # it stays a row: the lines are added below
                while (current := store.get(dep.id)) is None or current.status not in TERMINAL:
                    time.sleep(0.1)
                for start in range(0, size, 5_000):
                    numbers = range(start, min(size, start + 5_000))
                    store.append_events(dep.id, [line(current.attempt, i) for i in numbers])
                made.append((size, dep.id))
            link = links.mint(settings.hook.secret, url, Scope.everything(), time.time())
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(link)
                page.wait_for_url(url + "/ui/")
                for size, dep_id in made:
                    shown = views.log_lines(store.events(dep_id, limit=10 * size))
                    kept = [ln for ln in shown if not ln.shown.rewrites]
                    text = views.log_text(shown)  # log.txt, made here: the page's first
                    # opening is the first time the dispatcher reads these events
                    pre_url = pres.add(str(size), text)
                    last_text = text.rstrip("\n").rsplit("\n", 1)[-1]
                    runs: dict[str, list[Any]] = {"pre": [], "page": []}
                    for _ in range(args.repeat):  # side by side: one of each, in turn
                        runs["pre"].append(measure(page, pre_url, "pre", len(kept), 0, last_text))
                        live = f"{url}/ui/deployments/{dep_id}"
                        runs["page"].append(measure(page, live, "page", len(kept), kept[-1].id, ""))
                    drawn = page.evaluate("document.querySelectorAll('#log li').length")
                    search_ms = page.evaluate(SEARCH_JS)
                    row = {"lines": size, "rows": len(kept), "page_line_elements": drawn}
                    row["search_ms"] = round(search_ms)
                    # The first opening: the dispatcher reads every event (then only new ones).
                    row["first_pre_ms"], row["first_page_ms"] = (
                        round(runs[k][0][0]) for k in ("pre", "page")
                    )
                    for i, what in enumerate(WHATS):
                        pre = statistics.median(r[i] for r in runs["pre"])
                        mine = statistics.median(r[i] for r in runs["page"])
                        row[f"{what}_pre_ms"], row[f"{what}_page_ms"] = round(pre), round(mine)
                        row[f"{what}_ratio"] = round(mine / max(pre, 1), 2)
                    report.append(row)
                browser.close()
    finally:
        pres.server.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"medians of {args.repeat}, ms from navigation start (chromium, 1280x900)")
    print(f"{'lines':>7} {'':10} {'<pre>':>7} {'page':>7} {'ratio':>6}")
    for row in report:
        for what in WHATS:
            print(
                f"{row['lines']:>7} {what:10} {row[what + '_pre_ms']:>7} "
                f"{row[what + '_page_ms']:>7} {row[what + '_ratio']:>6}"
            )
        print(
            f"{'':>7} first opening, ready: <pre> {row['first_pre_ms']}, page "
            f"{row['first_page_ms']} ({row['first_page_ms'] / max(row['first_pre_ms'], 1):.2f})"
        )
        print(
            f"{'':>7} page: {row['rows']} rows (progress lines rewritten in place), "
            f"{row['page_line_elements']} drawn; search over all {row['search_ms']} ms"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
