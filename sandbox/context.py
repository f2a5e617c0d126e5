"""What every emulator is handed: identity (tokens, org names), URLs, clock, faults, storage."""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from sandbox.clock import Clock
from sandbox.faults import ErrorBody, FaultBook
from sandbox.postgres import PostgresServer
from sandbox.recording import Recorder
from sandbox.tls import TlsFiles

SERVICE_PORTS = ("github", "supabase", "vercel", "apps", "postgres")


def _alnum(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Identity:
    """The sandbox's accounts and tokens, fixed for the life of a state dir."""

    github_token: str
    github_org: str
    github_user: str
    supabase_token: str
    supabase_org_slug: str
    supabase_org_name: str
    vercel_token: str
    vercel_team_id: str
    vercel_team_slug: str
    vercel_user_id: str
    vercel_username: str
    admin_token: str
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls) -> Identity:
        return cls(
            github_token="ghp_" + _alnum(36),
            github_org="forge-apps",
            github_user="forge-bot",
            supabase_token="sbp_" + secrets.token_hex(20),
            supabase_org_slug="forgeorg" + "".join(secrets.choice("abcdefghij") for _ in range(12)),
            supabase_org_name="Forge Apps",
            vercel_token=_alnum(24),
            vercel_team_id="team_" + _alnum(24),
            vercel_team_slug="forge-apps",
            vercel_user_id=_alnum(24),
            vercel_username="forge-bot",
            admin_token=secrets.token_hex(16),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        identity = cls.new()
        identity.save(path)
        return identity

    def save(self, path: Path) -> None:
        """Atomically, through a private temporary file (mode 0600) of its own."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(self), indent=1, sort_keys=True))
        Path(tmp).replace(path)


@dataclass(frozen=True)
class Urls:
    host: str
    ports: dict[str, int]

    def _hostport(self, service: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.ports[service]}"

    @property
    def github_host(self) -> str:
        return self._hostport("github")

    @property
    def github_api(self) -> str:
        return f"https://{self.github_host}/api/v3"

    @property
    def github_graphql(self) -> str:
        return f"https://{self.github_host}/api/graphql"

    @property
    def github_git(self) -> str:
        return f"https://{self.github_host}"

    @property
    def supabase_api(self) -> str:
        return f"http://{self._hostport('supabase')}"

    @property
    def vercel_api(self) -> str:
        return f"http://{self._hostport('vercel')}"

    @property
    def apps_hostport(self) -> str:
        return self._hostport("apps")

    @property
    def apps(self) -> str:
        return f"https://{self.apps_hostport}"

    def supabase_project(self, ref: str) -> str:
        """A project's API base URL (the real one is https://<ref>.supabase.co)."""
        return f"{self.apps}/sb/{ref}"


@dataclass
class Context:
    state_dir: Path
    identity: Identity
    urls: Urls
    tls: TlsFiles
    clock: Clock
    faults: FaultBook
    postgres: PostgresServer
    recorder: Recorder | None = None
    supabase_defaults: str = "2026"  # what new Supabase projects get (`--supabase-defaults`)
    vercel_defaults: str = "2026"  # what new Vercel projects get (`--vercel-defaults`)

    def service_dir(self, name: str) -> Path:
        path = self.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Service:
    """One emulator: its ASGI app, its error shape, its inventory, its routes on the apps port."""

    name: str
    app: ASGIApp
    error_body: ErrorBody
    resources: Callable[[], dict[str, Any]]
    apps_routes: list[BaseRoute] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
