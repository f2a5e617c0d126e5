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
from pathlib import Path

import uvicorn

from dispatcher import settings as dispatcher_settings
from dispatcher.api.app import ApiSettings, create_app
from dispatcher.client import Client
from dispatcher.core.service import Dispatcher
from dispatcher.launchers.base import Launcher
from dispatcher.mirror import Mirror, MirrorConfigError
from dispatcher.mirror import from_env as mirror_from_env
from dispatcher.store.open import open_store

log = logging.getLogger("forge.dispatcher")


class EmbeddedError(Exception):
    """The embedded sandbox or dispatcher could not start; the message says why."""


def files_named(settings: dispatcher_settings.Settings) -> list[str]:
    """Files the runner's configuration names; a container or pod gets them read-only."""
    return [
        settings.runner_env[k]
        for k in ("FORGE_CA_FILE", "SUPABASE_PROFILE")
        if k in settings.runner_env
    ]


def make_launcher(settings: dispatcher_settings.Settings) -> Launcher:
    if settings.launcher == "docker":
        import docker

        from dispatcher.launchers.docker import DockerLauncher

        return DockerLauncher(
            docker.from_env(),
            settings.runner_image,
            settings.docker_network,
            read_only_files=files_named(settings),
        )
    if settings.kubernetes is not None:
        from dispatcher.launchers.kubernetes import KubernetesLauncher, api_client_from_environment

        return KubernetesLauncher(
            api_client_from_environment(),
            settings.kubernetes,
            read_only_files=files_named(settings),
        )
    from dispatcher.launchers.process import ProcessLauncher

    return ProcessLauncher(settings.state_dir / "runs")


def build(
    settings: dispatcher_settings.Settings, log_level: str = "warning"
) -> tuple[Dispatcher, uvicorn.Config]:
    store = open_store(settings.database_url, settings.database_password)
    store.migrate()
    launcher = make_launcher(settings)
    problem = launcher.health()
    if problem is not None:
        raise EmbeddedError(f"the {settings.launcher} launcher cannot run: {problem}")
    dispatcher = Dispatcher(settings, store, launcher)
    api = ApiSettings(
        settings.hook_secret,
        settings.builds_root,
        bundle_secret=settings.kubernetes.bundle_secret if settings.kubernetes else None,
    )
    app = create_app(store, dispatcher, api)
    # No access log: bundle URLs carry their (short-lived) token in the path.
    return dispatcher, uvicorn.Config(app, log_level=log_level, access_log=False)


def forgeboard_mirror(
    settings: dispatcher_settings.Settings, dispatcher: Dispatcher
) -> Mirror | None:
    """The ForgeBoard status mirror when FORGEBOARD_* asks for one (not started yet), woken by
    the dispatcher's status changes."""
    try:
        mirror = mirror_from_env(settings.forgeboard, dispatcher.store, dispatcher.masker)
    except MirrorConfigError as e:
        raise dispatcher_settings.ConfigError(str(e)) from e
    if mirror is not None:
        dispatcher.on_status = mirror.status_changed
    return mirror


def serve(host: str, port: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = dispatcher_settings.load()
    dispatcher, config = build(settings, log_level="info")
    mirror = forgeboard_mirror(settings, dispatcher)
    config.host, config.port = host, port
    dispatcher.start()
    if mirror is not None:
        mirror.start()
    try:
        uvicorn.Server(config).run()
    finally:
        dispatcher.stop()
        if mirror is not None:
            mirror.stop()


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
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("GH_", "SUPABASE_", "VERCEL_"))
            },
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
    """The dispatcher of `settings` and its API on `host` (a free port unless given), served
    from a thread of this process, for the duration of the block: (dispatcher, base URL)."""
    dispatcher, config = build(settings)
    mirror = forgeboard_mirror(settings, dispatcher)
    config.host, config.port = host, port or _free_port()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    dispatcher.start()
    if mirror is not None:
        mirror.start()
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise EmbeddedError("the embedded dispatcher API did not start")
            time.sleep(0.05)
        yield dispatcher, f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        dispatcher.stop()
        if mirror is not None:
            mirror.stop()
