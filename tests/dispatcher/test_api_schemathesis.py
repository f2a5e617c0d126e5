"""schemathesis against the served OpenAPI document: requests generated from it, valid and
invalid, each signed like a real client's (so they pass the hook's check and reach the
handlers); no answer may be a 5xx.

Signing is a `requests` auth object registered with the schema: it sees the prepared request,
so it signs the exact bytes sent. Each request gets its own microsecond timestamp (the app's
clock is fixed at the second the test starts), so none is refused as a replay.

Generated ids are random, so they only reach "not found". A second set of cases pins the path
to real deployments (a finished one with events, a queued one, a cancelled one) and the create
body to a real build directory, and generates the rest, so the handlers' deeper paths run too.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dispatcher.core import signing
from dispatcher.core.metrics import Metrics
from dispatcher.core.ports import NewEvent
from dispatcher.model import Patch, Status
from dispatcher.store.open import open_store
from dispatcher.web.app import WebSettings, create_app
from tests.support.core import idle_core

SECRET = b"schemathesis-hook-secret-0123456789"
MAX_EXAMPLES = 40
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

OPERATIONS = [
    "POST /v1/deployments",
    "GET /v1/deployments",
    "GET /v1/deployments/{deployment_id}",
    "GET /v1/deployments/{deployment_id}/events",
    "POST /v1/deployments/{deployment_id}/cancel",
    "POST /v1/deployments/{deployment_id}/retry",
    "POST /v1/deployments/{deployment_id}/teardown",
    "GET /healthz",
    "GET /metrics",
]


class HookSignature(requests.auth.AuthBase):
    """Signs each prepared request: X-Forge-Timestamp and X-Forge-Signature over its body."""

    def __init__(self, secret: bytes, now: float) -> None:
        self.secret = secret
        self.now = now
        self.counter = itertools.count(1)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes), f"unsigned body type {type(body).__name__}"
        r.headers.update(signing.sign(self.secret, raw, self.now + next(self.counter) / 1e6))
        return r


@dataclass
class Target:
    schema: BaseSchema
    finished_id: str  # live, with a complete event log (its stream ends)
    queued_id: str
    cancelled_id: str


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    root = tmp_path / "builds"
    (root / "shop-front").mkdir(parents=True)
    store = open_store(f"sqlite:///{tmp_path / 'forge.db'}")
    store.migrate()
    build = str(root / "shop-front")
    finished, _ = store.submit("proj-done", "shop-front", build, None)
    claimed = store.claim("test", 4)
    assert claimed is not None
    assert claimed.id == finished.id
    store.append_events(
        finished.id,
        [
            NewEvent(1, "step_started", "2024-01-01T00:00:01.000Z", {"step": "repo"}, 1),
            NewEvent(1, "eof", "2024-01-01T00:00:02.000Z", {"outcome": "live", "exit_code": 0}, 2),
        ],
    )
    store.update(finished.id, Patch(status=Status.LIVE, exit_code=0))
    queued, _ = store.submit("proj-queued", "shop-front", build, None)
    cancelled, _ = store.submit("proj-cancelled", "shop-front", build, None)
    store.update(cancelled.id, Patch(status=Status.CANCELLED))
    now = float(int(time.time()))
    app = create_app(
        idle_core(store, root),
        WebSettings(
            hook_secret=SECRET,
            clock=lambda: now,
            sse_tick_s=0.01,
            metrics=Metrics(),
        ),
    )
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        schema.auth.set_from_requests(HookSignature(SECRET, now))
        yield Target(schema, finished.id, queued.id, cancelled.id)
    finally:
        store.close()


def test_the_document_lists_every_operation(target: Target) -> None:
    found = sorted(
        result.ok().label for result in target.schema.get_all_operations() if isinstance(result, Ok)
    )
    assert found == sorted(OPERATIONS)


def _run(target: Target, label: str, mode: GenerationMode, **fixed: Any) -> list[int]:
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, label
    answered: list[int] = []

    @given(
        case=operation.as_strategy(generation_mode=mode, auth_storage=target.schema.auth, **fixed)
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case[Any]) -> None:
        response = case.call()
        answered.append(response.status_code)
        # Signed, so refused only for what it carries, never for its signature.
        assert response.status_code != 401, (case.method, case.formatted_path, response.text)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        # The default checks (status codes, content types, response schemas, negative data
        # rejected...), but for "valid data accepted": a schema cannot say which build
        # directories exist, so schema-valid bodies are refused with 422 by design.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()
    assert answered, label
    return answered


# Negative cases need something to get wrong: /healthz and /metrics take no input.
CASES = [(label, POSITIVE) for label in OPERATIONS] + [
    (label, NEGATIVE) for label in OPERATIONS if "/v1/" in label
]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{op} {m.value}" for op, m in CASES])
def test_no_generated_request_is_answered_with_a_5xx(
    target: Target, label: str, mode: GenerationMode
) -> None:
    _run(target, label, mode)


REAL = [
    ("GET /v1/deployments/{deployment_id}", "finished", {200}),
    ("GET /v1/deployments/{deployment_id}/events", "finished", {200}),
    # The first cancel stops it, the others find it cancelled already.
    ("POST /v1/deployments/{deployment_id}/cancel", "queued", {202, 409}),
    # The first retry queues it again, the others find it queued.
    ("POST /v1/deployments/{deployment_id}/retry", "cancelled", {202, 409}),
    ("POST /v1/deployments/{deployment_id}/teardown", "finished", {202}),
]


@pytest.mark.parametrize(("label", "which", "expected"), REAL, ids=[r[0] for r in REAL])
def test_generated_requests_on_real_deployments(
    target: Target, label: str, which: str, expected: set[int]
) -> None:
    dep_id = {
        "finished": target.finished_id,
        "queued": target.queued_id,
        "cancelled": target.cancelled_id,
    }[which]
    answered = _run(target, label, POSITIVE, path_parameters={"deployment_id": dep_id})
    assert set(answered) == expected, (label, sorted(set(answered)))


def test_generated_creates_of_a_real_build_are_accepted_or_replayed(target: Target) -> None:
    body = {"project_id": "proj-new", "project_name": "shop-front", "build_dir": "shop-front"}
    answered = _run(target, "POST /v1/deployments", POSITIVE, body=body)
    assert set(answered) <= {200, 202, 409, 422}, sorted(set(answered))
    assert 202 in answered
