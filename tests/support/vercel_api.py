"""Helpers shared by the Vercel emulator tests (no tests here): a REST caller, the real
`vercel` CLI with the sandbox's flags, a site directory writer and bounded status polling."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from tests.support.clis import CliRunner
from tests.support.sandbox import SandboxProcess

POLL_S = 0.05
MAX_POLLS = 600  # a bound on the number of status reads, not a deadline


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - Vercel's content digest


def inline(path: str, data: bytes) -> dict[str, Any]:
    return {"file": path, "data": base64.b64encode(data).decode(), "encoding": "base64"}


class VercelApi:
    """Calls the emulated REST API with the sandbox's token (or another one) and team."""

    def __init__(self, sandbox: SandboxProcess, token: str | None = None) -> None:
        self.sandbox = sandbox
        self.base = sandbox.info["vercel"]["api"]
        self.token = token if token is not None else sandbox.info["vercel"]["token"]
        self.team = sandbox.info["vercel"]["team"]

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        params = {"teamId": self.team, **kwargs.pop("params", {})}
        return requests.request(
            method, self.base + path, headers=headers, params=params, timeout=30, **kwargs
        )

    def production_alias_of(self, project: str) -> str:
        return f"{urlsplit(self.sandbox.info['apps']).netloc}/p/{project}"

    def create_project(self, name: str) -> str:
        created = self("POST", "/v11/projects", json={"name": name})
        assert created.status_code == 200, created.text
        project_id: str = created.json()["id"]
        return project_id

    def upload(self, data: bytes) -> requests.Response:
        return self(
            "POST",
            "/v2/files",
            data=data,
            headers={"Content-Type": "application/octet-stream", "x-vercel-digest": sha1(data)},
        )

    def deploy(self, name: str, files: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
        created = self("POST", "/v13/deployments", json={"name": name, "files": files, **body})
        assert created.status_code == 200, created.text
        deployment: dict[str, Any] = created.json()
        return deployment

    def deployment(self, id_or_url: str) -> dict[str, Any]:
        found = self("GET", f"/v13/deployments/{quote(id_or_url, safe='')}")
        assert found.status_code == 200, found.text
        deployment: dict[str, Any] = found.json()
        return deployment

    def wait(self, id_or_url: str, *, alias: bool = True) -> dict[str, Any]:
        """Poll until READY (and aliasAssigned) — a bounded number of reads."""
        for _ in range(MAX_POLLS):
            deployment = self.deployment(id_or_url)
            if deployment["readyState"] in ("READY", "ERROR", "CANCELED") and (
                deployment["aliasAssigned"] or not alias
            ):
                return deployment
            time.sleep(POLL_S)
        raise AssertionError(f"deployment {id_or_url} never finished: {deployment}")


class VercelCli:
    """The real `vercel` CLI pointed at the sandbox (`--api`, `--token`, a private config)."""

    def __init__(self, cli: CliRunner) -> None:
        self.cli = cli

    def __call__(
        self, *args: str, cwd: Path, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cli.run(
            ["vercel", *self.cli.vercel_args, *args], cwd=cwd, input=input, check=check
        )


def write_site(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def fetch(
    sandbox: SandboxProcess, url: str, headers: dict[str, str] | None = None, follow: bool = True
) -> requests.Response:
    """GET a deployment URL over HTTPS, trusting the sandbox CA."""
    if not url.startswith("https://"):
        url = f"https://{url}"
    return requests.get(
        url, verify=sandbox.ca_file, timeout=30, headers=headers, allow_redirects=follow
    )


def bypass_secret(api: VercelApi, project: str) -> str:
    """A new automation bypass secret of `project` (its previews are protected today)."""
    answer = api("PATCH", f"/v1/projects/{project}/protection-bypass", json={"generate": {}})
    answer.raise_for_status()
    return str(next(iter(answer.json()["protectionBypass"])))


def production_url(sandbox: SandboxProcess, project: str) -> str:
    return f"{sandbox.info['apps']}/p/{project}/"


def deployments_of(sandbox: SandboxProcess, project: str) -> list[dict[str, Any]]:
    return [d for d in sandbox.resources()["vercel"]["deployments"] if d["project"] == project]
