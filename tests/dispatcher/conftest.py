"""A real dispatcher for the end-to-end tests: the Dispatcher and its FastAPI app served by
uvicorn from a thread of the test process on a free loopback port (`embedded.running`, what
`forge-dispatcher deploy --sandbox` runs), deploying copies of examples/hello-app into the
session's sandbox with `runner_env(sandbox)` (the test knobs included).

`start_dispatcher(launcher=..., store=..., **env)` starts one (several per test when asked);
`e2e` is one started from its parameter `"<launcher>-<store>"`
(`process-sqlite`, `docker-sqlite`, `process-postgresql`, ...). The store is an SQLite file in
the test's state folder or a PostgreSQL database of its own in the session's cluster. At the
end of the test every runner the dispatcher still knows of is removed, the dispatcher stopped,
the store closed and the database dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from dispatcher import embedded
from dispatcher import settings as dispatcher_settings
from dispatcher.client import Client
from dispatcher.core import signing
from dispatcher.core.ports import Store
from dispatcher.core.service import Dispatcher
from dispatcher.model import TERMINAL
from dispatcher.store.open import open_store
from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.support import runner as runner_support
from tests.support.clis import REPO
from tests.support.core import CoreWorld
from tests.support.sandbox import SandboxProcess

EXAMPLE = REPO / "examples" / "hello-app"
LAUNCHERS = ("process", "docker")
STORES = ("sqlite", "postgresql")


def local_settings(builds_root: Path, state_dir: Path) -> dispatcher_settings.Settings:
    """The embedded defaults (SQLite under `state_dir`, the process launcher) over
    `builds_root`: for a test that drives the dispatcher's parts itself."""
    return dispatcher_settings.load(
        {
            "FORGE_HOOK_SECRET": "a-hook-secret-of-32-characters!!",
            "FORGE_BUILDS_ROOT": str(builds_root),
            "FORGE_STATE_DIR": str(state_dir),
        }
    )


def migrated_store(settings: dispatcher_settings.Settings) -> Store:
    """`settings`' store, opened and migrated."""
    store = open_store(settings.store.url, settings.store.password)
    store.migrate()
    return store


@pytest.fixture
def world(tmp_path: Path) -> Iterator[CoreWorld]:
    """The core tier's dispatcher (tests/support/core.py), closed at the end of the test."""
    made = CoreWorld(tmp_path)
    try:
        yield made
    finally:
        made.close()


class Signer:
    """Signs requests with strictly rising timestamps (microseconds), so two identical bodies
    sent at once never share a signature (the second would be refused as a replay)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._last = 0.0

    def headers(self, body: bytes) -> dict[str, str]:
        with self._lock:
            stamp = max(time.time(), self._last + 1e-6)
            self._last = stamp
        return signing.sign(self.secret, body, stamp)


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events of a text stream: one dict (id, event, data) per event; comments
    (`: ping`) skipped; multi-line data joined with newlines."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield {**fields, "data": "\n".join(data)}
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("id", "event", "retry"):
            fields[name] = value
    if data:
        yield {**fields, "data": "\n".join(data)}


@dataclass
class Api:
    """A dispatcher's API, signed, and the builds root it deploys from."""

    url: str
    secret: bytes
    builds_root: Path
    signer: Signer = field(init=False)
    responses: list[str] = field(init=False, default_factory=list)  # every answer read
    _session: threading.local = field(init=False, default_factory=threading.local)

    def __post_init__(self) -> None:
        self.signer = Signer(self.secret)

    @property
    def client(self) -> Client:
        return Client(self.url, self.secret)

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._session, "value", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._session.value = session
        return session

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        raw = b"" if body is None else json.dumps(body).encode()
        sent = {**self.signer.headers(raw), **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        response = self._http().request(
            method,
            self.url + path,
            data=raw or None,
            headers=sent,
            stream=stream,
            timeout=None if stream else 60,
        )
        if not stream:
            self.responses.append(response.text)
        return response

    # -- deployments --------------------------------------------------------------------------
    def build(self, name: str) -> str:
        """A copy of the example app in the builds root; its build_dir (relative)."""
        target = self.builds_root / name
        if not target.exists():
            shutil.copytree(EXAMPLE, target, symlinks=True)
        return name

    def submit(self, project_id: str, name: str, key: str | None = None) -> requests.Response:
        body = {"project_id": project_id, "project_name": name, "build_dir": self.build(name)}
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return self.request("POST", "/v1/deployments", body, headers)

    def deploy(self, name: str) -> dict[str, Any]:
        """Queue a deploy of `name` (its project id is the name); the 202's deployment."""
        response = self.submit(name, name)
        assert response.status_code == 202, response.text
        created: dict[str, Any] = response.json()
        return created

    def get(self, deployment_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/v1/deployments/{deployment_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def action(self, deployment_id: str, action: str) -> requests.Response:
        return self.request("POST", f"/v1/deployments/{deployment_id}/{action}")

    def wait(
        self, deployment_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 180
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.get(deployment_id)
            if until(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{deployment_id} did not get there in time: {current}")
            time.sleep(0.1)

    def wait_terminal(self, deployment_id: str, timeout_s: float = 180) -> dict[str, Any]:
        return self.wait(deployment_id, lambda d: d["status"] in TERMINAL, timeout_s)

    # -- events -------------------------------------------------------------------------------
    def events_jsonl(self, deployment_id: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"/v1/deployments/{deployment_id}/events?format=jsonl")
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def events_sse(
        self, deployment_id: str, last_event_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The SSE stream, followed to its end: each event's data, checked against its id and
        event fields."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        response = self.request(
            "GET", f"/v1/deployments/{deployment_id}/events", headers=headers, stream=True
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        seen: list[dict[str, Any]] = []
        raw: list[str] = []
        with response:
            lines = response.iter_lines(decode_unicode=True)
            for message in parse_sse(line for line in lines if raw.append(line) or True):
                event = json.loads(message["data"])
                assert message.get("id") == str(event["id"]), message
                assert message.get("event") == event["type"], message
                seen.append(event)
        self.responses.append("\n".join(raw))
        return seen


@dataclass
class RunningDispatcher(Api):
    """One dispatcher of a test, in this process: its API and the objects behind it."""

    dispatcher: Dispatcher = field(kw_only=True)
    settings: dispatcher_settings.Settings = field(kw_only=True)
    launcher_kind: str = field(kw_only=True)
    store_kind: str = field(kw_only=True)

    @property
    def store(self) -> Store:
        return self.dispatcher.store

    def stored(self, deployment_id: str) -> list[dict[str, Any]]:
        return [e.public() for e in self.store.events(deployment_id)]


def _database(kind: str, state: Path, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(FORGE_DATABASE_URL, the PostgreSQL database made for it)."""
    if kind == "sqlite":
        return f"sqlite:///{state / 'dispatcher.db'}", None
    admin: str = request.getfixturevalue("postgres_url")
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name, name


def dispatcher_env(
    sandbox: SandboxProcess, builds_root: Path, state: Path, database_url: str, launcher: str
) -> dict[str, str]:
    """The dispatcher's environment against the sandbox (no token outside the runner's
    variables; the seal key pair made in `state`)."""
    return {
        **runner_support.runner_env(sandbox),
        "FORGE_HOOK_SECRET": secrets.token_urlsafe(32),
        "FORGE_BUILDS_ROOT": str(builds_root),
        "FORGE_DATABASE_URL": database_url,
        "FORGE_LAUNCHER": launcher,
        "FORGE_DOCKER_NETWORK": "host",  # the sandbox listens on this host's loopback
        "FORGE_STATE_DIR": str(state),
        "FORGE_CANCEL_GRACE_S": "20",
    }


def process_path() -> str:
    """PATH for a process-launched runner: the pinned supabase CLI first."""
    return os.pathsep.join([str(REPO / "node_modules" / ".bin"), os.environ.get("PATH", "")])


def dump_sqlite(path: Path) -> dict[str, list[str]]:
    """Every row of every table of an SQLite file, as text."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [repr(row) for row in conn.execute(f'SELECT * FROM "{t}"')] for t in tables}


def dump_postgres(url: str) -> dict[str, list[str]]:
    """Every row of every table outside the system schemas of a PostgreSQL database."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return {
            name if schema == "public" else f"{schema}.{name}": [
                repr(row) for row in conn.execute(f'SELECT * FROM "{schema}"."{name}"')
            ]
            for schema, name in tables
        }


@pytest.fixture
def start_dispatcher(
    sandbox: SandboxProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., RunningDispatcher]]:
    """Starts dispatchers: `start(launcher="process", store="sqlite", **env)`, each on a state
    folder and a store of its own, all deploying from one builds root; `env` overrides the
    dispatcher's environment (FORGE_MAX_CONCURRENT, runner knobs, ...)."""
    builds_root = tmp_path / "builds"
    builds_root.mkdir()
    stack = contextlib.ExitStack()
    started: list[RunningDispatcher] = []
    databases: list[str] = []  # PostgreSQL databases made for them
    monkeypatch.setenv("PATH", process_path())  # read by the process launcher

    def start(launcher: str = "process", store: str = "sqlite", **env: str) -> RunningDispatcher:
        assert launcher in LAUNCHERS and store in STORES, (launcher, store)
        if launcher == "docker":
            request.getfixturevalue("runner_image")
        state = tmp_path / f"state-{len(started)}"
        state.mkdir()
        url, database = _database(store, state, request)
        if database is not None:
            databases.append(database)
        environ = {**dispatcher_env(sandbox, builds_root, state, url, launcher), **env}
        settings = dispatcher_settings.load(environ)
        dispatcher, base = stack.enter_context(embedded.running(settings))
        running = RunningDispatcher(
            base,
            settings.hook.secret,
            builds_root,
            dispatcher=dispatcher,
            settings=settings,
            launcher_kind=launcher,
            store_kind=store,
        )
        started.append(running)
        return running

    try:
        yield start
    finally:
        try:
            for running in started:
                _stop_runners(running)
        finally:
            stack.close()
            for running in started:
                running.dispatcher.store.close()
            if databases:
                admin: str = request.getfixturevalue("postgres_url")
                with psycopg.connect(admin, autocommit=True) as conn:
                    for database in databases:
                        conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def _stop_runners(running: RunningDispatcher) -> None:
    """Cancel what still runs (a failed test), then remove every runner the launcher knows."""
    store = running.dispatcher.store
    for dep in store.running():
        with contextlib.suppress(Exception):
            running.dispatcher.deployments.cancel(dep.id)
    deadline = time.monotonic() + 60
    while store.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    for handle in running.dispatcher.launcher.running():
        dep = store.get(handle.deployment_id)
        if dep is not None:  # ours (the engine may hold other tests' containers)
            running.dispatcher.launcher.remove(handle)


@pytest.fixture
def e2e(
    request: pytest.FixtureRequest, start_dispatcher: Callable[..., RunningDispatcher]
) -> RunningDispatcher:
    """A dispatcher from the parameter `"<launcher>-<store>"`."""
    launcher, store = str(request.param).split("-")
    return start_dispatcher(launcher=launcher, store=store)


def e2e_params(*pairs: str) -> list[Any]:
    """`pytest.param`s of "<launcher>-<store>" (for `e2e`, indirect, or a test's own
    parameter), each marked with what it needs."""
    params = []
    for pair in pairs:
        launcher = pair.split("-")[0]
        marks = [pytest.mark.clis, pytest.mark.postgres]  # the sandbox runs on PostgreSQL
        if launcher == "docker":
            marks.append(pytest.mark.docker)
        params.append(pytest.param(pair, marks=marks, id=pair))
    return params


def sandbox_secrets(sandbox: SandboxProcess) -> dict[str, str]:
    """Every secret the sandbox knows of: the three tokens, each project's database password
    and API keys (name -> value)."""
    info = sandbox.info
    found = {
        "github token": info["github"]["token"],
        "supabase token": info["supabase"]["token"],
        "vercel token": info["vercel"]["token"],
    }
    for project in sandbox.resources()["supabase"]["projects"]:
        found[f"db_pass of {project['name']}"] = project.get("db_pass", "")
        for i, key in enumerate(project.get("api_keys", [])):
            found[f"api key {i} of {project['name']}"] = key
    return {k: v for k, v in found.items() if v and len(v) >= 8}


def leaks(texts: dict[str, list[str]] | dict[str, str], known: dict[str, str]) -> list[str]:
    """`what in where` for every known secret value found in the texts."""
    found = []
    for where, content in texts.items():
        blob = content if isinstance(content, str) else "\n".join(content)
        found += [f"{what} in {where}" for what, value in known.items() if value in blob]
    return found


def gone(pid: int) -> bool:
    """The process `pid` has ended (or is a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")
