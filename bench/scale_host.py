"""The dispatcher under measurement, in a process of its own (bench/scale.py starts it).

Assembled as `dispatcher.embedded.build` does (settings from the environment, the store of
FORGE_DATABASE_URL, the launcher of FORGE_LAUNCHER, the API on loopback), with two probes that
change nothing it does:

- a hub that notes the wall time each stored event was published (store -> hub), so the
  watchers' receive times give the store -> watcher delay;
- a store proxy counting calls and time per method (who polls the store, and how often).

Prints one JSON line `{"url": ..., "pid": ...}` once the API answers. On SIGUSR1, and on
SIGTERM before it exits, it writes `{"calls": {...}, "published": [[dep, id, t], ...]}` to the
file named by --probe (atomically).

    python bench/scale_host.py --probe FILE
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import uvicorn

from dispatcher import settings as dispatcher_settings
from dispatcher.core.hub import EventHub
from dispatcher.core.service import Dispatcher
from dispatcher.embedded import make_launcher
from dispatcher.model import StoredEvent
from dispatcher.store.open import open_store
from dispatcher.web.app import WebSettings, create_app
from sandbox.postgres import free_port


class CountingStore:
    """Every call of the real store, counted and timed per method name."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: dict[str, list[float]] = {}  # name -> [count, seconds]

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                with self._lock:
                    row = self.calls.setdefault(name, [0, 0.0])
                    row[0] += 1
                    row[1] += spent

        return counted

    def snapshot(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self.calls.items()}


class ProbeHub(EventHub):
    """Notes (deployment, id, wall time) of every event as it is published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, int, float]] = []

    def publish_all(self, events: Iterable[StoredEvent]) -> None:
        events = list(events)
        now = time.time()
        self.published.extend((e.deployment_id, e.id, now) for e in events)
        super().publish_all(events)


def write_probe(path: Path, store: CountingStore, hub: ProbeHub) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"calls": store.snapshot(), "published": list(hub.published)}))
    tmp.replace(path)


def on_request(asked: threading.Event, action: Callable[[], None]) -> None:
    while True:
        asked.wait()
        asked.clear()
        action()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", type=Path, required=True)
    args = parser.parse_args()
    settings = dispatcher_settings.load(os.environ)
    real = open_store(settings.store.url, settings.store.password)
    real.migrate()
    store = CountingStore(real)
    launcher = make_launcher(settings)
    problem = launcher.health()
    if problem is not None:
        raise SystemExit(f"the {settings.launcher.kind} launcher cannot run: {problem}")
    hub = ProbeHub()
    dispatcher = Dispatcher(settings, store, launcher, hub=hub)  # type: ignore[arg-type]
    app = create_app(dispatcher.deployments, WebSettings(settings.hook.secret))
    port = free_port("127.0.0.1")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096
    )
    server = uvicorn.Server(config)
    asked = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: asked.set())
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    dispatcher.start()
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the dispatcher API did not start")
        time.sleep(0.02)
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    probe = threading.Thread(
        target=on_request, args=(asked, lambda: write_probe(args.probe, store, hub)), daemon=True
    )
    probe.start()
    thread.join()
    dispatcher.stop()
    write_probe(args.probe, store, hub)
    real.close()


if __name__ == "__main__":
    main()
