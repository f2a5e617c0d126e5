"""Helpers shared by the Supabase emulator tests (no tests here): a Management API caller,
bounded status polling, the rate-limit reset between tests, supabase-py clients of a project's
Data API and users' tokens signed with the project's keys (the sandbox has no sign-in)."""

from __future__ import annotations

import ssl
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import requests
from supabase import Client, ClientOptions, create_client

from tests.support.sandbox import SandboxProcess

POLL_S = 0.1
MAX_POLLS = 600  # a bound on the number of status reads, not a deadline


class Management:
    """Calls the emulated Management API with the sandbox's token (or another one)."""

    def __init__(self, sandbox: SandboxProcess, token: str | None = None) -> None:
        self.sandbox = sandbox
        self.base = sandbox.info["supabase"]["api"]
        self.token = token if token is not None else sandbox.info["supabase"]["token"]
        self.org = sandbox.info["supabase"]["org"]

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def create(self, name: str, db_pass: str = "forge-Test-pass-1", **extra: Any) -> str:  # noqa: S107
        body = {"name": name, "db_pass": db_pass, "organization_slug": self.org, **extra}
        created = self("POST", "/v1/projects", json=body)
        assert created.status_code == 201, created.text
        ref: str = created.json()["ref"]
        return ref

    def status(self, ref: str) -> str:
        answer = self("GET", f"/v1/projects/{ref}")
        assert answer.status_code == 200, answer.text
        value: str = answer.json()["status"]
        return value

    def wait_status(self, ref: str, wanted: str = "ACTIVE_HEALTHY") -> list[str]:
        """Read the status until it is `wanted`; the distinct statuses seen, in order."""
        seen: list[str] = []
        for _ in range(MAX_POLLS):
            current = self.status(ref)
            if not seen or seen[-1] != current:
                seen.append(current)
            if current == wanted:
                return seen
            time.sleep(POLL_S)
        pytest.fail(f"project {ref} never reached {wanted}; seen {seen}")

    def db_url(self, ref: str, password: str) -> str:
        """The project's database URL built from its pooler config, as a client would."""
        answer = self("GET", f"/v1/projects/{ref}/config/database/pooler")
        assert answer.status_code == 200, answer.text
        pooler = answer.json()[0]
        user, host = quote(pooler["db_user"], safe=""), pooler["db_host"]
        return (
            f"postgresql://{user}:{quote(password, safe='')}@{host}:{pooler['db_port']}/"
            f"{pooler['db_name']}?sslmode=disable"
        )

    def query(self, ref: str, sql: str) -> list[dict[str, Any]]:
        answer = self("POST", f"/v1/projects/{ref}/database/query", json={"query": sql})
        assert answer.status_code == 201, answer.text
        rows: list[dict[str, Any]] = answer.json()
        return rows


def reset_budget(sandbox: SandboxProcess) -> None:
    """Fresh rate-limit windows, so one test's calls do not throttle the next."""
    sandbox.admin("DELETE", "supabase/rate-limit").raise_for_status()


def project_entry(sandbox: SandboxProcess, ref: str) -> dict[str, Any] | None:
    for project in sandbox.resources()["supabase"]["projects"]:
        if project["ref"] == ref:
            entry: dict[str, Any] = project
            return entry
    return None


def keys_of(sandbox: SandboxProcess, ref: str) -> dict[str, Any]:
    """The project's keys by role (`anon`, `service_role`, `publishable`, `secret`), whether its
    legacy pair is enabled, and what signs its users' tokens; waits for them to be minted."""
    for _ in range(MAX_POLLS):
        entry = project_entry(sandbox, ref)
        if entry is not None and entry["keys"]["secret"]:
            found: dict[str, Any] = entry["keys"]
            return found
        time.sleep(POLL_S)
    pytest.fail(f"project {ref} has no keys")


def user_token(
    keys: dict[str, Any],
    sub: str | None = None,
    role: str = "authenticated",
    algorithm: str = "ES256",
    expires_in: int = 3600,
) -> str:
    """A user's access token, signed as the project's auth service signs it today (ES256 with
    the project's signing key and its `kid`), or with the legacy HS256 secret."""
    now = int(time.time())
    claims = {
        "sub": sub or str(uuid.uuid4()),
        "role": role,
        "aud": "authenticated",
        "email": "someone@example.invalid",
        "iat": now,
        "exp": now + expires_in,
    }
    if algorithm == "HS256":
        return jwt.encode(claims, keys["jwt_secret"], algorithm="HS256")
    signing = keys["signing_key"]
    return jwt.encode(
        claims, signing["private_pem"], algorithm="ES256", headers={"kid": signing["kid"]}
    )


def data_client(sandbox: SandboxProcess, ref: str, key: str, user: str | None = None) -> Client:
    """supabase-py on the project's Data API as an app uses it: `key` as the apikey and, for a
    signed-in user, their access token as the bearer."""
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", ref)
    headers = {"Authorization": f"Bearer {user}"} if user else {}
    verify = ssl.create_default_context(cafile=sandbox.ca_file)
    options = ClientOptions(headers=headers, httpx_client=httpx.Client(verify=verify))
    return create_client(url, key, options)
