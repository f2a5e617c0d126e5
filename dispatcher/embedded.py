"""Running the dispatcher: as a service (`serve`), or embedded for one deploy into a sandbox
(`sandboxed`: a `forge-sandbox` child process, the dispatcher and its API on a free loopback
port in this process, SQLite in `.forge-dispatcher/`)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dispatcher import settings as dispatcher_settings
from dispatcher.callbacks import Callbacks
from dispatcher.client import Client
from dispatcher.core.ports import Launcher
from dispatcher.core.service import Dispatcher
from dispatcher.mirror import Mirror, MirrorConfigError
from dispatcher.mirror import from_env as mirror_from_env
from dispatcher.store.open import open_store
from dispatcher.web.app import WebSettings, create_app
from runner.providers.catalog import PROVIDER_VARIABLES

log = logging.getLogger("forge.dispatcher")


class EmbeddedError(Exception):
    """The embedded sandbox or dispatcher could not start; the message says why."""


def files_named(settings: dispatcher_settings.Settings) -> list[str]:
    """Files the runner's configuration names; a container or pod gets them read-only."""
    env = settings.runner.env
    return [env[k] for k in ("FORGE_CA_FILE", "SUPABASE_PROFILE") if k in env]


def make_launcher(settings: dispatcher_settings.Settings) -> Launcher:
    launcher = settings.launcher
    if launcher.kind == "docker":
        import docker

        from dispatcher.launchers.docker.launcher import DockerLauncher

        return DockerLauncher(
            docker.from_env(),
            launcher.runner_image,
            launcher.docker_network,
            read_only_files=files_named(settings),
        )
    if launcher.kubernetes is not None:
        from dispatcher.launchers.kubernetes.launcher import (
            KubernetesLauncher,
            api_client_from_environment,
        )

        return KubernetesLauncher(
            api_client_from_environment(),
            launcher.kubernetes,
            read_only_files=files_named(settings),
        )
    from dispatcher.launchers.process.launcher import ProcessLauncher

    return ProcessLauncher(settings.state_dir / "runs")


@dataclass
class Service:
    """A dispatcher as `serve` runs it: the core, its web app, and the adapters told of every
    change (the status callbacks, the ForgeBoard mirror when FORGEBOARD_* asks for one)."""

    dispatcher: Dispatcher
    config: uvicorn.Config  # the web app, served by uvicorn (host and port set by the caller)
    callbacks: Callbacks
    mirror: Mirror | None

    def start(self) -> None:
        self.callbacks.start()
        self.dispatcher.start()
        if self.mirror is not None:
            self.mirror.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        if self.mirror is not None:
            self.mirror.stop()
        self.callbacks.stop()


def build(
    settings: dispatcher_settings.Settings,
    log_level: str = "warning",
    launcher: Launcher | None = None,
) -> Service:
    """The service of `settings` (not started); `launcher` instead of the one they name."""
    store = open_store(settings.store.url, settings.store.password)
    store.migrate()
    launcher = launcher or make_launcher(settings)
    problem = launcher.health()
    if problem is not None:
        raise EmbeddedError(f"the {settings.launcher.kind} launcher cannot run: {problem}")
    callbacks = Callbacks(settings.hook.callback_url, settings.hook.secret)
    dispatcher = Dispatcher(settings, store, launcher, listeners=[callbacks.status_changed])
    try:
        mirror = mirror_from_env(settings.forgeboard, dispatcher.deployments, dispatcher.masker)
    except MirrorConfigError as e:
        raise dispatcher_settings.ConfigError(str(e)) from e
    if mirror is not None:
        dispatcher.deployments.listen(mirror.status_changed)
    kubernetes = settings.launcher.kubernetes
    web = WebSettings(
        settings.hook.secret, bundle_secret=kubernetes.bundle_secret if kubernetes else None
    )
    app = create_app(dispatcher.deployments, web)
    # No access log: bundle URLs carry their (short-lived) token in the path.
    config = uvicorn.Config(app, log_level=log_level, access_log=False)
    return Service(dispatcher, config, callbacks, mirror)


def serve(host: str, port: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    service = build(dispatcher_settings.load(), log_level="info")
    service.config.host, service.config.port = host, port
    service.start()
    try:
        uvicorn.Server(service.config).run()
    finally:
        service.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _sandbox(state_dir: Path) -> Iterator[dict[str, str]]:
    """A running `forge-sandbox` and the environment it prints for forge-deploy."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)  # its PostgreSQL runs as `postgres`
    log_file = (state_dir / "sandbox.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=log_file,
    )
    try:
        assert process.stdout is not None
        if not process.stdout.readline():
            raise EmbeddedError(f"the sandbox did not start; see {state_dir / 'sandbox.log'}")
        printed = subprocess.run(
            [sys.executable, "-m", "sandbox.cli", "env", "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        yield dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        log_file.close()


@contextlib.contextmanager
def sandboxed(builds_root: Path, backend: str, root: Path | None = None) -> Iterator[Client]:
    """Sandbox + dispatcher (+ its API on loopback) for the duration of the block."""
    root = root or Path.cwd()
    with _sandbox(root / ".forge-sandbox") as sandbox_env:
        secret = secrets.token_urlsafe(32)
        environ: Mapping[str, str] = {
            # the user's own provider settings stay out: the sandbox's are the ones
            **{k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES},
            **sandbox_env,
            "FORGE_HOOK_SECRET": secret,
            "FORGE_BUILDS_ROOT": str(builds_root),
            "FORGE_LAUNCHER": backend,
            "FORGE_DOCKER_NETWORK": "host",  # the sandbox listens on this host's loopback
            "FORGE_STATE_DIR": str(root / ".forge-dispatcher"),
        }
        environ = {k: v for k, v in environ.items() if k != "FORGE_DATABASE_URL"}
        settings = dispatcher_settings.load(environ)
        with running(settings) as (_, url):
            yield Client(url, secret.encode())


@contextlib.contextmanager
def running(
    settings: dispatcher_settings.Settings, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[tuple[Dispatcher, str]]:
    """The dispatcher of `settings` and its web app on `host` (a free port unless given),
    served from a thread of this process, for the duration of the block: (dispatcher, base
    URL)."""
    service = build(settings)
    service.config.host, service.config.port = host, port or _free_port()
    server = uvicorn.Server(service.config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    service.start()
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise EmbeddedError("the embedded dispatcher API did not start")
            time.sleep(0.05)
        yield service.dispatcher, f"http://{host}:{service.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.stop()
