"""A real dispatcher for the suite, against the world's sandbox: its store, the process or the
Docker launcher (recording each RunSpec it launches), and its API served on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import uvicorn

from bench.reliability.world import EXAMPLE, REPO, World, unique_name
from dispatcher import settings as dispatcher_settings
from dispatcher.core.ports import Handle, Launcher, RunSpec
from dispatcher.core.service import Dispatcher
from dispatcher.embedded import make_launcher
from dispatcher.store.open import open_store
from dispatcher.web.app import WebSettings, create_app
from sandbox.postgres import free_port
from tests.dispatcher.conftest import Api, dispatcher_env


class RecordingLauncher:
    """The real launcher, with every RunSpec it was asked to launch kept."""

    def __init__(self, inner: Launcher) -> None:
        self.inner = inner
        self.specs: list[RunSpec] = []

    def launch(self, spec: RunSpec) -> Handle:
        self.specs.append(spec)
        return self.inner.launch(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Deployer:
    api: Api
    state: Path
    launcher: RecordingLauncher
    name: str = field(default_factory=lambda: unique_name("scan"))

    @property
    def specs(self) -> list[RunSpec]:
        return self.launcher.specs

    def run(self, action: str, ids: list[str]) -> dict[str, Any]:
        """deploy / redeploy (a new build of the same project) / teardown: the deployment, once
        terminal."""
        if action == "teardown":
            response = self.api.action(ids[-1], "teardown")
        else:
            build = self.api.builds_root / self.name
            if not build.exists():
                shutil.copytree(EXAMPLE, build)
            (build / "public" / "build.txt").write_text(f"{self.name} {action}")
            response = self.api.submit(self.name, self.name)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"{action}: {response.status_code} {response.text}")
        dep: dict[str, Any] = response.json()
        ids.append(dep["id"])
        return self.api.wait_terminal(dep["id"], timeout_s=300)

    def events(self, deployment_id: str) -> str:
        return "\n".join(json.dumps(e) for e in self.api.events_jsonl(deployment_id))


@contextlib.contextmanager
def running_dispatcher(w: World, launcher: str, database: str | None) -> Iterator[Deployer]:
    """A dispatcher with `launcher` on SQLite (database None) or on that PostgreSQL database."""
    root = w.root / unique_name(f"dispatcher-{launcher}")
    state, builds = root / "state", root / "builds"
    state.mkdir(parents=True)
    builds.mkdir()
    url = (
        f"sqlite:///{state / 'dispatcher.db'}"
        if database is None
        else w.postgres_url.rsplit("/", 1)[0] + "/" + database
    )
    environ = dispatcher_env(w.sandbox, builds, state, url, launcher)
    environ["FORGE_HOOK_SECRET"] = secrets.token_urlsafe(32)
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(REPO / "node_modules" / ".bin"), old_path])
    settings = dispatcher_settings.load(environ)
    store = open_store(settings.store.url, settings.store.password)
    store.migrate()
    recording = RecordingLauncher(make_launcher(settings))
    dispatcher = Dispatcher(settings, store, cast(Launcher, recording))
    app = create_app(dispatcher.deployments, WebSettings(settings.hook.secret))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port("127.0.0.1"), log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    dispatcher.start()
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dispatcher API did not start")
            time.sleep(0.05)
        api = Api(f"http://127.0.0.1:{config.port}", settings.hook.secret, builds)
        yield Deployer(api, state, recording)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        dispatcher.stop()
        for handle in recording.inner.running():
            with contextlib.suppress(Exception):
                recording.inner.remove(handle)
        store.close()
        os.environ["PATH"] = old_path
