"""Typed settings from the environment, validated before any request is made.

The names users already know stay (`GH_TOKEN`, `GH_ORG`, `SUPABASE_ACCESS_TOKEN`,
`SUPABASE_ORG_ID`, `SUPABASE_REGION`, `VERCEL_TOKEN`, `VERCEL_ORG_ID`); `FORGE_*` base URLs and
a CA file let the same code target the sandbox. `FORGE_ENV_FILE` names a `KEY=VALUE` file read at
start (how a container receives its tokens without them showing in `docker inspect`); values in
the process environment win over the file. Every error names the variable.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from runner.errors import BadInput
from runner.events import DEPLOYMENT_ID_RULE, deployment_id
from runner.providers.catalog import GITHUB, SUPABASE, VERCEL

_TOKEN = re.compile(r"^[\x21-\x7e]{8,512}$")
_GH_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
_ORG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d$")
EXPOSURE_POLICIES = ("warn", "fail")


@dataclass(frozen=True)
class GithubSettings:
    token: str
    org: str
    api_url: str = "https://api.github.com"
    git_url: str = "https://github.com"


@dataclass(frozen=True)
class SupabaseSettings:
    token: str
    org_id: str
    region: str = "us-east-1"
    api_url: str = "https://api.supabase.com"
    project_url: str = "https://{ref}.supabase.co"  # `{ref}` is replaced by the project ref
    profile: str | None = None  # SUPABASE_PROFILE, handed to the supabase CLI


@dataclass(frozen=True)
class VercelSettings:
    token: str
    org_id: str
    api_url: str = "https://api.vercel.com"


@dataclass(frozen=True)
class RunSettings:
    deploy_id: str
    ca_file: Path | None = None
    seal_public_key: bytes | None = None  # FORGE_SEAL_PUBLIC_KEY, base64 Curve25519
    seal_private_key: bytes | None = None  # FORGE_SEAL_PRIVATE_KEY, to open a sealed password
    health_path: str = "/"
    health_redeploys: int = 2
    http_timeout_s: float = 30.0
    supabase_deadline_s: float = 2700.0  # ACTIVE_HEALTHY can take 45 min in incidents
    vercel_deadline_s: float = 1800.0
    poll_interval_s: float = 1.0
    heartbeat_s: float = 15.0
    backoff_scale: float = 1.0  # multiplies every retry wait; tests against the sandbox lower it
    vercel_uploads: int = 8  # FORGE_VERCEL_UPLOADS: files uploaded at once (bench/uploads.py)
    # FORGE_EXPOSURE_POLICY: `warn`, or `fail` to stop the deploy when a table is readable or
    # writable by anyone holding the publishable key (RLS off); the hook request's field
    exposure_policy: str = "warn"


@dataclass(frozen=True)
class Settings:
    github: GithubSettings
    supabase: SupabaseSettings
    vercel: VercelSettings
    run: RunSettings

    def secrets(self) -> list[str]:
        keys = [self.run.seal_private_key]
        return [self.github.token, self.supabase.token, self.vercel.token] + [
            base64.b64encode(k).decode() for k in keys if k
        ]


class _Env:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def required(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.get(name)
        if value is None:
            raise BadInput(f"{name} is not set: {what}")
        if not pattern.match(value):
            raise BadInput(f"{name} is malformed: expected {what}")
        return value

    def url(self, name: str, default: str) -> str:
        value = self.get(name, default)
        assert value is not None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"{name} is malformed: expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise BadInput(f"{name} is malformed: expected a number, got {raw!r}") from None
        if not low <= value <= high:
            raise BadInput(f"{name} is out of range: expected {low} to {high}, got {raw}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        """One of `allowed` (the first is the default)."""
        value = self.get(name, allowed[0])
        if value not in allowed:
            raise BadInput(
                f"{name} is malformed: expected one of {' | '.join(allowed)}, got {value!r}"
            )
        return str(value)

    def key(self, name: str) -> bytes | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"{name} is malformed: expected base64") from None
        if len(key) != 32:
            raise BadInput(f"{name} is malformed: expected a 32-byte Curve25519 key in base64")
        return key


def _merged_environment(environ: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    env_file = environ.get("FORGE_ENV_FILE")
    if env_file:
        path = Path(env_file)
        if not path.is_file():
            raise BadInput(f"FORGE_ENV_FILE names {env_file}, which is not a readable file")
        values.update(
            {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}
        )
    values.update(environ)
    return values


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = _Env(_merged_environment(os.environ if environ is None else environ))
    token_shape = "a token (8 to 512 printable characters, no spaces)"  # noqa: S105
    github = GithubSettings(
        token=env.required(GITHUB.token, _TOKEN, token_shape),
        org=env.required(GITHUB.account, _GH_LOGIN, "a GitHub organization login"),
        api_url=env.url("FORGE_GITHUB_API_URL", GithubSettings.api_url),
        git_url=env.url("FORGE_GITHUB_GIT_URL", GithubSettings.git_url),
    )
    project_url = env.url("FORGE_SUPABASE_PROJECT_URL", SupabaseSettings.project_url)
    if "{ref}" not in project_url:
        raise BadInput("FORGE_SUPABASE_PROJECT_URL is malformed: it must contain {ref}")
    supabase = SupabaseSettings(
        token=env.required(SUPABASE.token, _TOKEN, token_shape),
        org_id=env.required(SUPABASE.account, _ORG_ID, "a Supabase organization id"),
        region=env.get("SUPABASE_REGION", SupabaseSettings.region) or SupabaseSettings.region,
        api_url=env.url("FORGE_SUPABASE_API_URL", SupabaseSettings.api_url),
        project_url=project_url,
        profile=env.get("SUPABASE_PROFILE"),
    )
    if not _REGION.match(supabase.region):
        raise BadInput(
            f"SUPABASE_REGION is malformed: expected e.g. us-east-1, got {supabase.region!r}"
        )
    vercel = VercelSettings(
        token=env.required(VERCEL.token, _TOKEN, token_shape),
        org_id=env.required(VERCEL.account, _ORG_ID, "a Vercel team id or slug"),
        api_url=env.url("FORGE_VERCEL_API_URL", VercelSettings.api_url),
    )
    try:
        deploy_id = deployment_id(env.get("FORGE_DEPLOY_ID") or f"local-{uuid.uuid4().hex[:12]}")
    except ValueError:
        raise BadInput(f"FORGE_DEPLOY_ID is malformed: {DEPLOYMENT_ID_RULE}") from None
    ca = env.get("FORGE_CA_FILE")
    if ca is not None and not Path(ca).is_file():
        raise BadInput(f"FORGE_CA_FILE names {ca}, which is not a readable file")
    health_path = env.get("FORGE_HEALTH_PATH", "/") or "/"
    if not health_path.startswith("/") or any(c.isspace() for c in health_path):
        raise BadInput("FORGE_HEALTH_PATH is malformed: expected a path starting with /")
    run = RunSettings(
        deploy_id=deploy_id,
        ca_file=Path(ca) if ca else None,
        seal_public_key=env.key("FORGE_SEAL_PUBLIC_KEY"),
        seal_private_key=env.key("FORGE_SEAL_PRIVATE_KEY"),
        health_path=health_path,
        health_redeploys=int(env.number("FORGE_HEALTH_REDEPLOYS", 2, 0, 10)),
        http_timeout_s=env.number("FORGE_HTTP_TIMEOUT_S", 30.0, 0.1, 600),
        supabase_deadline_s=env.number("FORGE_SUPABASE_DEADLINE_S", 2700.0, 1, 86400),
        vercel_deadline_s=env.number("FORGE_VERCEL_DEADLINE_S", 1800.0, 1, 86400),
        poll_interval_s=env.number("FORGE_POLL_INTERVAL_S", 1.0, 0.001, 60),
        heartbeat_s=env.number("FORGE_HEARTBEAT_S", 15.0, 0.1, 3600),
        backoff_scale=env.number("FORGE_BACKOFF_SCALE", 1.0, 0.0, 10),
        vercel_uploads=int(env.number("FORGE_VERCEL_UPLOADS", 8, 1, 64)),
        exposure_policy=env.choice("FORGE_EXPOSURE_POLICY", EXPOSURE_POLICIES),
    )
    return Settings(github, supabase, vercel, run)
