"""A ForgeBoard dashboard on the sandbox: one Supabase project of the session's sandbox, with
today's defaults (new tables granted to no API role, legacy keys disabled), the dashboard's
`projects` table and the kit's migration applied by the real `supabase db push`, its
publishable and secret keys, and users' JWTs signed with the project's ES256 signing key (as
its auth service signs them; the sandbox has no sign-in)."""

from __future__ import annotations

import shutil
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from supabase import Client, ClientOptions, create_client

from tests.dispatcher.conftest import RunningDispatcher
from tests.support.clis import REPO, CliRunner
from tests.support.sandbox import SandboxProcess
from tests.support.supabase_api import Management, keys_of, project_entry

KIT = REPO / "integrations" / "forgeboard"
DASHBOARD_SQL = Path(__file__).with_name("dashboard_projects.sql")
HISTORY_SQL = Path(__file__).with_name("deployment_history.sql")


@dataclass(frozen=True)
class Dashboard:
    ref: str
    url: str  # the project's API base (https://<ref>.supabase.co's stand-in)
    publishable_key: str
    secret_key: str
    signing_key: dict[str, str]  # kid, private_pem: what the auth service signs tokens with
    db_url: str
    ca_file: str
    push_output: str

    def user_token(self, user_id: str, expires_in: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": "authenticated",
            "aud": "authenticated",
            "email": f"{user_id[:8]}@forgeboard.example",
            "iat": now,
            "exp": now + expires_in,
        }
        return jwt.encode(
            claims,
            self.signing_key["private_pem"],
            algorithm="ES256",
            headers={"kid": self.signing_key["kid"]},
        )

    def mirror_env(self) -> dict[str, str]:
        """What a dispatcher needs to mirror into this dashboard (its FORGEBOARD_* settings)."""
        return {
            "FORGEBOARD_SUPABASE_URL": self.url,
            "FORGEBOARD_SUPABASE_SERVICE_KEY": self.secret_key,
            "FORGEBOARD_CA_FILE": self.ca_file,
            "FORGEBOARD_POLL_S": "0.2",
        }

    def client(self, key: str | None = None, user_token: str | None = None) -> Client:
        """supabase-py as a dashboard uses it: `key` (the publishable key by default) and, for
        a signed-in user, their access token as the bearer."""
        headers = {"Authorization": f"Bearer {user_token}"} if user_token else {}
        verify = ssl.create_default_context(cafile=self.ca_file)
        options = ClientOptions(headers=headers, httpx_client=httpx.Client(verify=verify))
        return create_client(self.url, key or self.publishable_key, options)


def push_migrations(cli: CliRunner, workdir: Path, db_url: str) -> str:
    migrations = workdir / "supabase" / "migrations"
    migrations.mkdir(parents=True, exist_ok=True)
    shutil.copy(DASHBOARD_SQL, migrations / "20261206110000_dashboard_projects.sql")
    for path in sorted((KIT / "migrations").glob("*.sql")):
        shutil.copy(path, migrations / path.name)
    shutil.copy(HISTORY_SQL, migrations / "20261206130000_deployment_history.sql")
    result = cli.run(
        ["supabase", *cli.supabase_args, "db", "push", "--db-url", db_url, "--yes"], cwd=workdir
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def dashboard(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    home = tmp_path_factory.mktemp("forgeboard-home")
    cli = CliRunner(sandbox.info, home)
    api = Management(sandbox)
    password = "Forge-Board-pass-1"
    ref = api.create(f"forgeboard-{uuid.uuid4().hex[:8]}", db_pass=password)
    api.wait_status(ref)
    keys = keys_of(sandbox, ref)
    entry = project_entry(sandbox, ref)
    assert entry is not None and entry["defaults"] == "2026" and not keys["legacy_enabled"]
    db_url = api.db_url(ref, password)
    output = push_migrations(cli, tmp_path_factory.mktemp("forgeboard-push"), db_url)
    return Dashboard(
        ref=ref,
        url=sandbox.info["supabase"]["project_url"].replace("{ref}", ref),
        publishable_key=keys["publishable"],
        secret_key=keys["secret"],
        signing_key=keys["signing_key"],
        db_url=db_url,
        ca_file=sandbox.ca_file,
        push_output=output,
    )


def add_project(
    dashboard: Dashboard, running: RunningDispatcher, project_id: str, owner: str, name: str
) -> None:
    """A dashboard project of `owner`, deployed as `name` from a copy of the example app."""
    running.build(name)
    dashboard.client(dashboard.secret_key).table("projects").insert(
        {"id": project_id, "owner_id": owner, "name": name, "build_dir": name}
    ).execute()


@pytest.fixture
def out_dir() -> Iterator[Path]:
    """Inside the repo (gitignored build/), so node finds node_modules from the output."""
    path = REPO / "build" / f"forgeboard-node-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)
