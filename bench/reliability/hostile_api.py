"""Hostile requests to a real dispatcher's API: schemathesis' negative cases generated from the
served OpenAPI document for every `/v1` operation, signed like a real client's so they reach
the handlers; plus a 10 MB body, build paths outside the builds root, and generated hostile
project names. Each: a 4xx with an error message, no new deployment row, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from bench.reliability.dispatchers import Deployer
from bench.reliability.hostile import deployments_rows, hostile_names
from bench.reliability.table import Verdict
from tests.dispatcher.conftest import Signer


class _Signed(requests.auth.AuthBase):
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        r.headers.update(self.signer.headers(raw))
        return r


class Answer(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def judge(where: str, response: Answer, rows: tuple[int, int]) -> Verdict:
    verdict = Verdict(where)
    status = response.status_code
    if status >= 500:
        verdict.other.append(f"answered {status}: {response.text[:300]}")
    elif status < 400:
        if where.startswith("POST /v1/deployments "):
            verdict.lost.append(f"accepted ({status}): {response.text[:300]}")
    else:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = ""
        if not isinstance(message, str) or len(message) < 5:
            verdict.other.append(f"{status} without an error message: {response.text[:300]}")
    if rows[1] != rows[0]:
        verdict.duplicated.append(f"deployments rows {rows[0]} -> {rows[1]}")
    return verdict


def generated(deployer: Deployer, per_operation: int) -> list[Verdict]:
    """schemathesis' negative cases, `per_operation` for each /v1 operation."""
    db = deployer.state / "dispatcher.db"
    schema = schemathesis.openapi.from_url(f"{deployer.api.url}/openapi.json")
    schema.auth.set_from_requests(_Signed(deployer.api.signer))
    found: list[Verdict] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise TypeError(f"the served OpenAPI document has a bad operation: {result}")
        operation = result.ok()
        if "/v1/" not in operation.label:
            continue
        strategy = operation.as_strategy(
            generation_mode=GenerationMode.NEGATIVE, auth_storage=schema.auth
        )

        _negative(strategy, operation.label, per_operation, db, found)
    return found


def _negative(strategy: Any, label: str, examples: int, db: Path, found: list[Verdict]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case[Any]) -> None:
        before = deployments_rows(db)
        response = case.call(timeout=30)
        where = f"{label} [{case.formatted_path} {json.dumps(case.body, default=str)[:80]}]"
        found.append(judge(where, response, (before, deployments_rows(db))))

    check()


def crafted(deployer: Deployer, seed: int) -> list[Verdict]:
    """What a generator would not think of: size, paths out of the builds root, names."""
    api, db = deployer.api, deployer.state / "dispatcher.db"
    root = api.builds_root
    outside = root.parent / "outside-build"
    outside.mkdir(exist_ok=True)
    (outside / "index.html").write_text("x")
    link = root / "link-out"
    if not link.exists():
        link.symlink_to(outside)
    (root / "ok-build").mkdir(exist_ok=True)
    (root / "ok-build" / "index.html").write_text("x")

    def body(name: str = "valid-name", build: str = "ok-build") -> dict[str, Any]:
        return {"project_id": "p-hostile", "project_name": name, "build_dir": build}

    sends: dict[str, Callable[[], requests.Response]] = {
        "10 MB body": lambda: api.request("POST", "/v1/deployments", {"pad": "x" * (10 << 20)}),
        "build_dir a symlink out of the builds root": lambda: api.request(
            "POST", "/v1/deployments", body(build="link-out")
        ),
        "build_dir ../ out of the builds root": lambda: api.request(
            "POST", "/v1/deployments", body(build="../outside-build")
        ),
        "build_dir absolute, outside": lambda: api.request(
            "POST", "/v1/deployments", body(build=str(outside))
        ),
        "build_dir with control characters": lambda: api.request(
            "POST", "/v1/deployments", body(build="ok-\x07build\n")
        ),
    }
    for name in hostile_names(seed, 30):
        sends[f"project_name {json.dumps(name)}"] = (
            lambda name=name: api.request("POST", "/v1/deployments", body(name=name))  # type: ignore[misc]
        )
    found = []
    for what, send in sends.items():
        before = deployments_rows(db)
        response = send()
        found.append(
            judge(f"POST /v1/deployments {what}", response, (before, deployments_rows(db)))
        )
    return found
