"""Every sandbox answer to an operation of the official OpenAPI excerpts validates against it.

Runs last (see conftest): it replays the traffic recorded during the whole session — the real
CLI runs of the other tests — plus a direct sweep of the operations a deploy uses.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
import requests

from tests.support.openapi import validate
from tests.support.sandbox import SandboxProcess

pytestmark = pytest.mark.conformance

# Operations that must have been validated at least once (method, path regex).
REQUIRED = {
    "github": [
        ("GET", r"/user"),
        ("GET", r"/orgs/[^/]+"),
        ("GET", r"/orgs/[^/]+/repos"),
        ("POST", r"/orgs/[^/]+/repos"),
        ("GET", r"/repos/[^/]+/[^/]+"),
        ("PATCH", r"/repos/[^/]+/[^/]+"),
        ("DELETE", r"/repos/[^/]+/[^/]+"),
        ("PUT", r"/repos/[^/]+/[^/]+/topics"),
        ("GET", r"/repos/[^/]+/[^/]+/topics"),
        ("GET", r"/rate_limit"),
    ],
    "supabase": [
        ("GET", r"/v1/organizations"),
        ("POST", r"/v1/projects"),
        ("GET", r"/v1/projects"),
        ("GET", r"/v1/projects/[a-z]{20}"),
        ("GET", r"/v1/projects/[a-z]{20}/api-keys"),
        ("GET", r"/v1/projects/[a-z]{20}/health"),
        ("DELETE", r"/v1/projects/[a-z]{20}"),
        ("POST", r"/v1/projects/[a-z]{20}/database/query"),
        ("POST", r"/v1/projects/[a-z]{20}/database/query/read-only"),
        ("GET", r"/v1/projects/[a-z]{20}/api-keys/legacy"),
        ("PUT", r"/v1/projects/[a-z]{20}/api-keys/legacy"),
        ("POST", r"/v1/projects/[a-z]{20}/api-keys"),
        ("GET", r"/v1/projects/[a-z]{20}/api-keys/[0-9a-f-]{36}"),
        ("PATCH", r"/v1/projects/[a-z]{20}/api-keys/[0-9a-f-]{36}"),
        ("DELETE", r"/v1/projects/[a-z]{20}/api-keys/[0-9a-f-]{36}"),
        ("GET", r"/v1/projects/[a-z]{20}/config/auth"),
        ("PATCH", r"/v1/projects/[a-z]{20}/config/auth"),
        ("GET", r"/v1/projects/[a-z]{20}/config/auth/signing-keys"),
        ("POST", r"/v1/projects/[a-z]{20}/pause"),
        ("POST", r"/v1/projects/[a-z]{20}/restore"),
    ],
    "vercel": [
        ("GET", r"/v2/user"),
        ("POST", r"/v11/projects"),
        ("GET", r"/v9/projects/[^/]+"),
        ("POST", r"/v10/projects/[^/]+/env"),
        ("GET", r"/v10/projects/[^/]+/env"),
        ("POST", r"/v2/files"),
        ("POST", r"/v13/deployments"),
        ("GET", r"/v13/deployments/[^/]+"),
        ("DELETE", r"/v9/projects/[^/]+"),
    ],
}


class Api:
    def __init__(self, base: str, token: str, verify: str | bool = True, prefix: str = "Bearer"):
        self.base, self.verify = base, verify
        self.headers = {"Authorization": f"{prefix} {token}"}

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(
            method, self.base + path, headers=headers, verify=self.verify, timeout=30, **kwargs
        )


def _sweep(sandbox: SandboxProcess, unique: str) -> None:
    info = sandbox.info
    gh = Api(info["github"]["api"], info["github"]["token"], sandbox.ca_file)
    org, name = info["github"]["org"], f"sweep-{unique}"
    gh("GET", "/user")
    gh("GET", f"/orgs/{org}")
    assert gh("POST", f"/orgs/{org}/repos", json={"name": name, "private": True}).status_code == 201
    gh("GET", f"/orgs/{org}/repos", params={"per_page": 2})
    gh("GET", f"/repos/{org}/{name}")
    gh("PATCH", f"/repos/{org}/{name}", json={"description": "forge sweep"})
    gh("PUT", f"/repos/{org}/{name}/topics", json={"names": ["forge-deploy"]})
    gh("GET", f"/repos/{org}/{name}/topics")
    gh("GET", "/rate_limit")
    gh("GET", f"/repos/{org}/missing-{unique}")
    assert gh("DELETE", f"/repos/{org}/{name}").status_code == 204

    sb = Api(info["supabase"]["api"], info["supabase"]["token"])
    sandbox.set_time_scale(0)
    sb("GET", "/v1/organizations")
    created = sb(
        "POST",
        "/v1/projects",
        json={
            "name": name,
            "organization_slug": info["supabase"]["org"],
            "db_pass": "x" * 32,
            "region": "us-east-1",
        },
    )
    assert created.status_code == 201, created.text
    ref = created.json()["ref"]
    sb("GET", "/v1/projects")
    sb("GET", f"/v1/projects/{ref}")
    sb("GET", f"/v1/projects/{ref}/health", params={"services": "db,rest,auth"})
    sb("GET", f"/v1/projects/{ref}/api-keys", params={"reveal": "true"})
    sb("POST", f"/v1/projects/{ref}/database/query", json={"query": "select 1 as one"})
    sb("POST", f"/v1/projects/{ref}/database/query/read-only", json={"query": "select 2 as two"})
    keys = f"/v1/projects/{ref}/api-keys"
    sb("GET", f"{keys}/legacy")
    sb("PUT", f"{keys}/legacy", params={"enabled": "false"})
    made = sb("POST", keys, params={"reveal": "true"}, json={"type": "secret", "name": "sweep"})
    assert made.status_code == 201, made.text
    sb("GET", f"{keys}/{made.json()['id']}")
    sb("PATCH", f"{keys}/{made.json()['id']}", json={"name": "sweep_renamed"})
    sb("DELETE", f"{keys}/{made.json()['id']}")
    sb("GET", f"/v1/projects/{ref}/config/auth")
    sb("PATCH", f"/v1/projects/{ref}/config/auth", json={"site_url": "https://sweep.example"})
    sb("GET", f"/v1/projects/{ref}/config/auth/signing-keys")
    assert sb("POST", f"/v1/projects/{ref}/pause").status_code == 200
    assert sb("POST", f"/v1/projects/{ref}/restore").status_code == 200
    sb("GET", "/v1/projects/abcdefghijklmnopqrst")
    assert sb("DELETE", f"/v1/projects/{ref}").status_code == 200

    vc = Api(info["vercel"]["api"], info["vercel"]["token"])
    team = {"teamId": info["vercel"]["team"]}
    vc("GET", "/v2/user")
    project = vc("POST", "/v11/projects", params=team, json={"name": name})
    assert project.status_code == 200, project.text
    pid = project.json()["id"]
    vc("GET", f"/v9/projects/{pid}", params=team)
    vc(
        "POST",
        f"/v10/projects/{pid}/env",
        params={**team, "upsert": "true"},
        json=[{"key": "NEXT_PUBLIC_X", "value": "1", "type": "plain", "target": ["production"]}],
    )
    vc("GET", f"/v10/projects/{pid}/env", params=team)
    css = b"body { color: red }\n"
    sha = hashlib.sha1(css).hexdigest()  # noqa: S324 - the provider's content digest
    vc(
        "POST",
        "/v2/files",
        params=team,
        data=css,
        headers={
            "Content-Type": "application/octet-stream",
            "x-vercel-digest": sha,
            "Content-Length": str(len(css)),
        },
    )
    deployment = vc(
        "POST",
        "/v13/deployments",
        params=team,
        json={
            "name": name,
            "project": pid,
            "target": "production",
            "files": [
                {
                    "file": "index.html",
                    "data": base64.b64encode(b"<h1>hi</h1>").decode(),
                    "encoding": "base64",
                },
                {"file": "style.css", "sha": sha, "size": len(css)},
            ],
        },
    )
    assert deployment.status_code == 200, deployment.text
    vc("GET", f"/v13/deployments/{deployment.json()['id']}", params=team)
    vc("GET", "/v9/projects/prj_missing", params=team)
    assert vc("DELETE", f"/v9/projects/{pid}", params=team).status_code == 204


def test_every_recorded_answer_validates_against_the_providers_documents(
    sandbox: SandboxProcess, unique: str
) -> None:
    _sweep(sandbox, unique)
    report = validate(sandbox.traffic())
    assert not report.failures, "\n".join(report.failures[:30])
    for service, required in REQUIRED.items():
        seen = report.validated.get(service, [])
        for method, pattern in required:
            rx = re.compile(rf"^{service} {method} (/api/v3)?{pattern} -> \d+$")
            assert any(rx.match(label) for label in seen), (
                f"never validated: {service} {method} {pattern}"
            )
