"""`forge-sandbox serve`: start the three emulators and the apps server, announce, run, stop.

All servers share one event loop. Once every one accepts connections, one JSON line goes to
stdout (the announcement); human logging goes to stderr. SIGTERM/SIGINT stop everything,
PostgreSQL included.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from sandbox import github, supabase, vercel
from sandbox.admin import admin_routes
from sandbox.clock import Clock
from sandbox.context import SERVICE_PORTS, Context, Identity, Service, Urls
from sandbox.faults import FaultBook, FaultMiddleware
from sandbox.postgres import ManagedCluster, PostgresServer, external_server, free_port
from sandbox.recording import Recorder, RecordingMiddleware
from sandbox.tls import ensure_tls

log = logging.getLogger("forge-sandbox")


class _Server(uvicorn.Server):
    """uvicorn server whose signals the sandbox handles (several servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _assign_ports(identity: Identity, host: str, path: Path) -> Identity:
    missing = [name for name in SERVICE_PORTS if name not in identity.ports]
    if not missing:
        return identity
    ports = dict(identity.ports)
    for name in missing:
        ports[name] = free_port(host)
    updated = Identity(**{**identity.__dict__, "ports": ports})
    updated.save(path)
    return updated


def _check_ports_free(host: str, ports: dict[str, int], names: list[str]) -> None:
    for name in names:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, ports[name]))
            except OSError as e:
                raise SystemExit(
                    f"forge-sandbox: port {ports[name]} ({name}) is in use: is another sandbox "
                    f"running on this state dir? ({e})"
                ) from e


def announcement(ctx: Context) -> dict[str, Any]:
    ident, urls = ctx.identity, ctx.urls
    ca = str(ctx.tls.ca_file)
    return {
        "github": {
            "api": urls.github_api,
            "graphql": urls.github_graphql,
            "git": urls.github_git,
            "host": urls.github_host,
            "ca_file": ca,
            "token": ident.github_token,
            "org": ident.github_org,
            "user": ident.github_user,
        },
        "supabase": {
            "api": urls.supabase_api,
            "token": ident.supabase_token,
            "org": ident.supabase_org_slug,
            "profile_file": str(ctx.state_dir / "supabase" / "profile.yaml"),
            "project_url": urls.supabase_project("{ref}"),
            "defaults": ctx.supabase_defaults,
        },
        "vercel": {
            "api": urls.vercel_api,
            "token": ident.vercel_token,
            "team": ident.vercel_team_id,
            "team_slug": ident.vercel_team_slug,
            "defaults": ctx.vercel_defaults,
        },
        "apps": urls.apps,
        "ca_file": ca,
        "admin": {"url": f"{urls.apps}/_admin", "token": ident.admin_token},
        "postgres": {"host": ctx.postgres.host, "port": ctx.postgres.port},
        "state_dir": str(ctx.state_dir),
        "time_scale": ctx.clock.scale,
    }


def _wrap(service: str, app: ASGIApp, ctx: Context, error_body: Any) -> ASGIApp:
    if ctx.recorder is not None:
        app = RecordingMiddleware(app, service, ctx.recorder)
    return FaultMiddleware(app, service, ctx.faults, error_body)


async def _run(ctx: Context, services: list[Service]) -> None:
    apps_routes: list[BaseRoute] = list(admin_routes(ctx, services))
    for service in services:
        apps_routes.extend(service.apps_routes)
    apps_app = Starlette(routes=apps_routes)

    def config(app: ASGIApp, port_name: str, tls: bool) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host=ctx.urls.host,
            port=ctx.identity.ports[port_name],
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(ctx.tls.cert_file) if tls else None,
            ssl_keyfile=str(ctx.tls.key_file) if tls else None,
        )

    by_name = {service.name: service for service in services}
    servers = [
        _Server(config(_wrap(s.name, s.app, ctx, s.error_body), s.name, s.name == "github"))
        for s in services
    ]
    servers.append(
        _Server(config(_wrap("apps", apps_app, ctx, by_name["vercel"].error_body), "apps", True))
    )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        failed = [t for t in tasks if t.done()]
        if failed or stop.is_set():
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            raise SystemExit("forge-sandbox: a server failed to start (see above)")
        await asyncio.sleep(0.02)

    sys.stdout.write(json.dumps(announcement(ctx)) + "\n")
    sys.stdout.flush()
    log.warning("forge-sandbox: ready (state dir %s)", ctx.state_dir)

    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()


def serve(
    state_dir: Path,
    host: str,
    faults: list[Any],
    time_scale: float,
    postgres_url: str | None,
    record: bool,
    postgres_password: str = "",
    supabase_defaults: str = "2026",
    vercel_defaults: str = "2026",
) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = _hold_state_dir(state_dir)  # released when this process ends
    identity_file = state_dir / "sandbox.json"
    identity = _assign_ports(Identity.load_or_create(identity_file), host, identity_file)
    _check_ports_free(host, identity.ports, ["github", "supabase", "vercel", "apps"])
    book = FaultBook()
    book.replace(FaultBook.parse(faults))

    cluster: ManagedCluster | None = None
    pg: PostgresServer
    if postgres_url:
        pg = external_server(postgres_url, postgres_password)
    else:
        cluster = ManagedCluster(state_dir / "postgres", host, identity.ports["postgres"])
        pg = cluster.start()
    services: list[Service] = []
    try:
        ctx = Context(
            state_dir=state_dir,
            identity=identity,
            urls=Urls(host, identity.ports),
            tls=ensure_tls(state_dir / "tls", host),
            clock=Clock(scale=time_scale),
            faults=book,
            postgres=pg,
            recorder=Recorder(state_dir / "traffic.jsonl") if record else None,
            supabase_defaults=supabase_defaults,
            vercel_defaults=vercel_defaults,
        )
        services = [github.build(ctx), supabase.build(ctx), vercel.build(ctx)]
        asyncio.run(_run(ctx, services))
    finally:
        for service in services:
            service.close()
        if cluster:
            cluster.stop()
        lock.close()


def _hold_state_dir(state_dir: Path) -> IO[str]:
    """One `serve` per state dir: an exclusive lock on `serve.lock`, taken before the identity,
    the ports or the TLS files are read or made. Two sandboxes started together on a new state
    dir would otherwise each mint tokens and ports and overwrite each other's."""
    path = state_dir / "serve.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SystemExit(
            f"forge-sandbox: another `forge-sandbox serve` (pid {holder}) holds {path}: one "
            "sandbox per state dir"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
