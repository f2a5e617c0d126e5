"""Helpers shared by the Supabase emulator tests (no tests here): a Management API caller,
bounded status polling, the rate-limit reset between tests."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

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
