"""The dispatcher's HTTP API over a real store (an SQLite file; PostgreSQL too), through
FastAPI's TestClient: signing, hostile requests, reads, event streams, actions, metrics.

Each app's clock is fixed at the second its test starts (`Api.now`: the store prunes
remembered signatures by its own clock, so it has to be near the real one), so signature
windows never depend on how long a test takes; each request is signed with its own microsecond,
so two bodiless GETs never share a signature.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.core import signing
from dispatcher.core.builds import BuildDirError, resolve_build_dir
from dispatcher.core.deployments import Deployments
from dispatcher.core.hub import EventHub
from dispatcher.core.metrics import Metrics
from dispatcher.core.policy import Action, refusal
from dispatcher.core.ports import NewEvent, Store
from dispatcher.model import TERMINAL, Deployment, Patch, Status, StoredEvent
from dispatcher.store.open import open_store
from dispatcher.web.app import WebSettings, create_app
from tests.support.core import idle_core

NOW = 1_700_000_000.0  # for the pure tests
SECRET = b"hook-secret-for-tests-0123456789abcdef"
LIMIT = 8 * 1024


@dataclass
class Api:
    client: TestClient
    store: Store
    hub: EventHub
    control: Deployments
    root: Path
    metrics: Metrics
    now: float
    responses: list[str] = field(default_factory=list)
    wakes: int = 0
    _n: int = 0

    def signed(self, body: bytes = b"", ts: float | str | None = None) -> dict[str, str]:
        self._n += 1
        return signing.sign(SECRET, body, self.now + self._n / 1e6 if ts is None else ts)

    def _keep(self, response: httpx.Response) -> httpx.Response:
        self.responses.append(response.text)
        return response

    def post(
        self, url: str, payload: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        sent = {"content-type": "application/json", **self.signed(body), **(headers or {})}
        return self._keep(self.client.post(url, content=body, headers=sent))

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self._keep(self.client.get(url, headers={**self.signed(), **(headers or {})}))

    def create(self, project: str = "p1", name: str = "shop-front", **extra: str) -> Deployment:
        r = self.post(
            "/v1/deployments",
            {"project_id": project, "project_name": name, "build_dir": "app-1"},
            headers=extra or None,
        )
        assert r.status_code in (200, 202), r.text
        dep = self.store.get(r.json()["id"])
        assert dep is not None
        return dep

    def count(self) -> int:
        return len(self.store.list_deployments(None, limit=10_000))


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'forge.db'}"
        return
    admin: str = request.getfixturevalue("postgres_url")
    name = f"api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _database(request, tmp_path)


@pytest.fixture
def builds_root(tmp_path: Path) -> Path:
    root = tmp_path / "builds"
    (root / "app-1").mkdir(parents=True)
    (root / "app-1" / "package.json").write_text("{}")
    (root / "file.txt").write_text("not a directory")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inner-link").symlink_to(root / "app-1")
    return root


@pytest.fixture
def api(database_url: str, builds_root: Path, tmp_path: Path) -> Iterator[Api]:
    store = open_store(database_url)
    store.migrate()
    hub = EventHub()
    control = idle_core(store, builds_root, hub)
    metrics = Metrics()
    now = float(int(time.time()))
    settings = WebSettings(
        hook_secret=SECRET,
        max_body_bytes=LIMIT,
        clock=lambda: now,
        sse_tick_s=0.05,
        metrics=metrics,
    )
    app = create_app(control, settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            handle = Api(client, store, hub, control, builds_root, metrics, now)
            real_wake = control.queue.wake

            def counted_wake() -> None:  # a spy: counts, then wakes the real queue
                handle.wakes += 1
                real_wake()

            control.queue.wake = counted_wake  # type: ignore[method-assign]
            yield handle
        leaked = [text for text in handle.responses if SECRET.decode() in text]
        assert not leaked, "the hook secret reached a response"
    finally:
        store.close()


def _error(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


# -- creating --------------------------------------------------------------------------------------


def test_signed_create_is_accepted_and_readable(api: Api) -> None:
    body = {"project_id": "proj_1", "project_name": "shop-front", "build_dir": "app-1"}
    r = api.post("/v1/deployments", body)
    assert r.status_code == 202, r.text
    dep = r.json()
    assert dep["id"].startswith("dep_")
    assert dep["status"] == "queued"
    assert dep["project_id"] == "proj_1"
    assert dep["build_dir"] == str((api.root / "app-1").resolve())
    assert api.wakes == 1
    got = api.get(f"/v1/deployments/{dep['id']}")
    assert got.status_code == 200
    assert got.json() == dep


def test_absolute_build_dir_under_the_root_and_a_symlink_inside_it_are_accepted(api: Api) -> None:
    for raw in (str(api.root / "app-1"), "inner-link", "app-1/../app-1"):
        r = api.post(
            "/v1/deployments", {"project_id": "p", "project_name": "shop", "build_dir": raw}
        )
        assert r.status_code == 202, (raw, r.text)
        assert r.json()["build_dir"] == str((api.root / "app-1").resolve())


def test_idempotency_key_returns_the_same_deployment(api: Api) -> None:
    body = {"project_id": "p1", "project_name": "shop-front", "build_dir": "app-1"}
    key = {"Idempotency-Key": "order-42"}
    first = api.post("/v1/deployments", body, headers=key)
    again = api.post("/v1/deployments", body, headers=key)  # a new signature, same key
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert api.wakes == 1
    other = api.post("/v1/deployments", {**body, "project_name": "other-app"}, headers=key)
    assert other.status_code == 409
    assert _error(other)["code"] == "idempotency_conflict"
    assert api.count() == 1


def test_a_deploy_may_set_its_exposure_policy(api: Api) -> None:
    """Issue 27's per-deploy policy: `exposure_policy` ("warn" | "fail") is validated like the
    other fields, kept with the deployment and answered back; absent, it stays null (the
    runner's own default). It is part of what an Idempotency-Key is bound to. (The runner
    receives it as FORGE_EXPOSURE_POLICY: tests/dispatcher/test_core_commands.py.)"""
    body = {"project_id": "p1", "project_name": "shop-front", "build_dir": "app-1"}
    strict = api.post("/v1/deployments", {**body, "exposure_policy": "fail"})
    assert strict.status_code == 202, strict.text
    assert strict.json()["exposure_policy"] == "fail"
    kept = api.store.get(strict.json()["id"])
    assert kept is not None and kept.exposure_policy == "fail"
    plain = api.post("/v1/deployments", body)
    assert plain.status_code == 202 and plain.json()["exposure_policy"] is None
    for bad in ("loud", "", None, 1, ["fail"]):
        before = api.count()
        r = api.post("/v1/deployments", {**body, "exposure_policy": bad})
        if bad is None:  # the same as absent
            assert r.status_code == 202, r.text
            continue
        assert r.status_code == 422, (bad, r.text)
        assert _error(r)["code"] == "invalid_request" and "exposure_policy" in _error(r)["message"]
        assert api.count() == before
    key = {"Idempotency-Key": "policy-1"}
    assert api.post("/v1/deployments", {**body, "exposure_policy": "warn"}, key).status_code == 202
    other = api.post("/v1/deployments", {**body, "exposure_policy": "fail"}, key)
    assert other.status_code == 409 and _error(other)["code"] == "idempotency_conflict"
    field = api.client.get("/openapi.json").json()["components"]["schemas"]["CreateDeployment"]
    policy = field["properties"]["exposure_policy"]
    assert "exposure_policy" not in field.get("required", [])
    assert {"enum": ["warn", "fail"], "type": "string"} in policy["anyOf"], policy


# -- authentication --------------------------------------------------------------------------------

BODY = json.dumps({"project_id": "p1", "project_name": "shop-front", "build_dir": "app-1"}).encode()


def _headers_for(case: str, now: float) -> dict[str, str]:
    stamp = f"{now + 0.5:.1f}"
    good = signing.sign(SECRET, BODY, stamp)
    if case == "unsigned":
        return {}
    if case == "no signature":
        return {signing.TIMESTAMP_HEADER: good[signing.TIMESTAMP_HEADER]}
    if case == "no timestamp":
        return {signing.SIGNATURE_HEADER: good[signing.SIGNATURE_HEADER]}
    if case == "wrong secret":
        return signing.sign(b"not-the-secret", BODY, stamp)
    if case == "other body":
        return signing.sign(SECRET, BODY + b" ", stamp)
    if case == "other timestamp":
        return {**good, signing.TIMESTAMP_HEADER: f"{now + 1.5:.1f}"}
    if case == "stale":
        return signing.sign(SECRET, BODY, int(now) - 301)
    if case == "future":
        return signing.sign(SECRET, BODY, int(now) + 301)
    if case == "not a number":
        return {**good, signing.TIMESTAMP_HEADER: "yesterday"}
    if case == "malformed signature":
        return {**good, signing.SIGNATURE_HEADER: "md5=abc"}
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "missing"),
        ("no signature", "missing"),
        ("no timestamp", "missing"),
        ("wrong secret", "bad_signature"),
        ("other body", "bad_signature"),
        ("other timestamp", "bad_signature"),
        ("stale", "stale"),
        ("future", "stale"),
        ("not a number", "bad_timestamp"),
        ("malformed signature", "bad_signature"),
    ],
)
def test_unauthenticated_requests_are_refused_and_create_nothing(
    api: Api, case: str, reason: str
) -> None:
    headers = {"content-type": "application/json", **_headers_for(case, api.now)}
    r = api._keep(api.client.post("/v1/deployments", content=BODY, headers=headers))
    assert r.status_code == 401, r.text
    assert _error(r)["code"] == reason
    assert api.count() == 0
    assert api.wakes == 0
    failures = api.metrics.hook_auth_failures.labels(reason)._value.get()
    assert failures == 1


def test_a_replayed_request_is_refused(api: Api) -> None:
    headers = {"content-type": "application/json", **signing.sign(SECRET, BODY, api.now + 0.25)}
    first = api.client.post("/v1/deployments", content=BODY, headers=headers)
    assert first.status_code == 202
    again = api._keep(api.client.post("/v1/deployments", content=BODY, headers=headers))
    assert again.status_code == 401
    assert _error(again)["code"] == "replayed"
    assert api.count() == 1
    # A bodiless GET replayed is refused too; the same GET signed anew passes.
    get_headers = signing.sign(SECRET, b"", api.now + 0.75)
    url = f"/v1/deployments/{first.json()['id']}"
    assert api.client.get(url, headers=get_headers).status_code == 200
    assert api.client.get(url, headers=get_headers).status_code == 401
    assert api.get(url).status_code == 200


def test_every_route_but_health_metrics_and_docs_needs_a_signature(api: Api) -> None:
    for url in ("/v1/deployments", "/v1/deployments/dep_x", "/v1/deployments/dep_x/events"):
        r = api.client.get(url)
        assert r.status_code == 401, url
    assert api.client.post("/v1/deployments/dep_x/cancel").status_code == 401
    assert api.client.get("/nowhere").status_code == 401
    signed = api.get("/nowhere")
    assert signed.status_code == 404
    assert _error(signed)["code"] == "not_found"
    assert api.client.get("/healthz").json() == {"ok": True, "store": "ok"}
    assert api.client.get("/metrics").status_code == 200
    doc = api.client.get("/openapi.json").json()
    assert "/v1/deployments/{deployment_id}/events" in doc["paths"]
    schemes = doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        signing.TIMESTAMP_HEADER,
        signing.SIGNATURE_HEADER,
    }


# -- hostile bodies --------------------------------------------------------------------------------


def _payload(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"project_id": "p1", "project_name": "shop-front", "build_dir": "app-1"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (_payload(build_dir="/etc"), "bad_build_dir", "outside the builds root"),
        (_payload(build_dir="../outside"), "bad_build_dir", "outside the builds root"),
        (_payload(build_dir="app-1/../../outside"), "bad_build_dir", "outside the builds root"),
        (_payload(build_dir="escape"), "bad_build_dir", "through a symlink"),
        (_payload(build_dir="escape/deeper"), "bad_build_dir", "through a symlink"),
        (_payload(build_dir="missing"), "bad_build_dir", "does not exist"),
        (_payload(build_dir="file.txt"), "bad_build_dir", "not a directory"),
        (_payload(build_dir="."), "bad_build_dir", "the builds root itself"),
        (_payload(build_dir="app-1\x00x"), "bad_build_dir", "NUL byte"),
        (_payload(build_dir=""), "invalid_request", "body.build_dir"),
        (_payload(build_dir=None), "invalid_request", "body.build_dir: Field required"),
        (_payload(project_id=123), "invalid_request", "body.project_id"),
        (_payload(build_dir=["app-1"]), "invalid_request", "body.build_dir"),
        (_payload(project_id="has space"), "invalid_request", "body.project_id"),
        (_payload(project_id="x" * 129), "invalid_request", "body.project_id"),
        (_payload(project_name="Shop Front"), "invalid_request", "shell metacharacters"),
        (_payload(project_name="api"), "invalid_request", "reserved"),
        (_payload(project_name="x" * 2000), "invalid_request", "too long"),
        (_payload(build_dir="a/" * 2100), "invalid_request", "body.build_dir"),
        ({**_payload(), "owner": "someone"}, "invalid_request", "body.owner: unknown field"),
        ([_payload()], "invalid_request", "must be a JSON object"),
        ("just a string", "invalid_request", "must be a JSON object"),
        (None, "invalid_request", "Field required"),
    ],
)
def test_hostile_bodies_are_refused_naming_the_problem(
    api: Api, payload: Any, code: str, fragment: str
) -> None:
    r = api.post("/v1/deployments", payload)
    assert r.status_code == 422, r.text
    error = _error(r)
    assert error["code"] == code
    assert fragment in error["message"]
    assert len(r.content) < 4096  # the input is never echoed back
    assert api.count() == 0


def test_not_json_and_wrong_media_type_are_refused(api: Api) -> None:
    body = b'{"project_id": "p1", '
    r = api.client.post(
        "/v1/deployments",
        content=body,
        headers={"content-type": "application/json", **api.signed(body)},
    )
    assert r.status_code == 422
    assert _error(r)["code"] == "invalid_json"
    assert "not valid JSON" in _error(r)["message"]
    plain = json.dumps(_payload()).encode()
    r = api.client.post(
        "/v1/deployments",
        content=plain,
        headers={"content-type": "text/plain", **api.signed(plain)},
    )
    assert r.status_code == 422
    assert "application/json" in _error(r)["message"]
    latin = b'{"project_id": "\xff"}'
    r = api.client.post(
        "/v1/deployments",
        content=latin,
        headers={"content-type": "application/json", **api.signed(latin)},
    )
    assert 400 <= r.status_code < 500, r.text
    _error(r)
    assert api.count() == 0


def test_oversized_bodies_are_refused_before_parsing(api: Api) -> None:
    big = json.dumps(_payload(project_name="x" * (1024 * 1024))).encode()  # a 1 MB string
    r = api.client.post(
        "/v1/deployments", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413  # refused on Content-Length, before even the signature
    assert _error(r)["code"] == "body_too_large"
    assert str(LIMIT) in _error(r)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed bytes are counted
        yield b'{"project_id": "p1", "build_dir": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"a" * 1024
        yield b'"}'

    r = api.client.post(
        "/v1/deployments",
        content=chunks(),
        headers={"content-type": "application/json", **api.signed(b"")},
    )
    assert r.status_code == 413
    just_over = json.dumps(_payload(build_dir="a" * LIMIT)).encode()
    r = api.client.post(
        "/v1/deployments",
        content=just_over,
        headers={"content-type": "application/json", **api.signed(just_over)},
    )
    assert r.status_code == 413
    assert api.count() == 0


def test_bad_query_and_header_values_are_4xx(api: Api) -> None:
    assert api.get("/v1/deployments?limit=0").status_code == 422
    assert api.get("/v1/deployments?limit=99999").status_code == 422
    assert api.get("/v1/deployments?project_id=a%20b").status_code == 422
    dep = api.create()
    url = f"/v1/deployments/{dep.id}/events"
    assert api.get(url, headers={"Last-Event-ID": "x"}).status_code == 422
    assert api.get(url + "?after=99999999999999999999999").status_code == 422
    assert api.get(url + "?format=xml").status_code == 422
    r = api.post("/v1/deployments", _payload(), headers={"Idempotency-Key": "has space"})
    assert r.status_code == 422
    assert api.count() == 1


# -- reading ---------------------------------------------------------------------------------------


def test_get_one_and_list(api: Api) -> None:
    a1 = api.create("proj-a", "alpha")
    a2 = api.create("proj-a", "alpha")
    b1 = api.create("proj-b", "beta")
    listed = api.get("/v1/deployments?project_id=proj-a").json()["deployments"]
    assert [d["id"] for d in listed] == [a2.id, a1.id]
    everything = api.get("/v1/deployments").json()["deployments"]
    assert [d["id"] for d in everything] == [b1.id, a2.id, a1.id]
    assert len(api.get("/v1/deployments?limit=1").json()["deployments"]) == 1
    assert api.get("/v1/deployments?project_id=nobody").json() == {"deployments": []}
    one = api.get(f"/v1/deployments/{b1.id}").json()
    assert one == b1.public()
    missing = api.get("/v1/deployments/dep_000000000000000000000000")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"


# -- events ----------------------------------------------------------------------------------------


def _event(attempt: int, kind: str, seq: int, **payload: Any) -> NewEvent:
    return NewEvent(attempt, kind, f"2024-01-01T00:00:{seq:02d}.000Z", payload, seq)


def _running(api: Api) -> Deployment:
    api.create()
    dep = api.store.claim("test-worker", 4)
    assert dep is not None
    assert dep.status is Status.RUNNING
    return dep


def _finish(api: Api, dep: Deployment, publish: bool = False) -> list[StoredEvent]:
    stored = api.store.append_events(
        dep.id,
        [
            _event(dep.attempt, "result", 90, outcome="live"),
            _event(dep.attempt, "eof", 91, outcome="live", exit_code=0),
        ],
    )
    api.store.update(dep.id, Patch(status=Status.LIVE, exit_code=0))
    if publish:
        api.hub.publish_all(stored)
    return stored


def _sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """One dict per SSE message (comments skipped)."""
    message: dict[str, str] = {}
    for line in lines:
        if line == "":
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")
    if message:
        yield message


def _as_stored(message: dict[str, str]) -> dict[str, Any]:
    data = json.loads(message["data"])
    assert str(data["id"]) == message["id"]
    assert data["type"] == message["event"]
    return dict(data)


def test_sse_sends_the_backlog_resumes_after_last_event_id_and_ends(api: Api) -> None:
    dep = _running(api)
    api.store.append_events(
        dep.id,
        [
            _event(1, "step_started", 1, step="repo"),
            _event(1, "log", 2, level="info", message="hello"),
            _event(1, "step_finished", 3, step="repo", elapsed_s=0.1),
        ],
    )
    stored = api.store.events(dep.id) + _finish(api, dep)
    url = f"/v1/deployments/{dep.id}/events"
    with api.client.stream("GET", url, headers=api.signed()) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = [_as_stored(m) for m in _sse(r.iter_lines())]
    assert got == [e.public() for e in stored]
    assert got[-1]["type"] == "eof"
    with api.client.stream("GET", url, headers={**api.signed(), "Last-Event-ID": "3"}) as r:
        resumed = [_as_stored(m) for m in _sse(r.iter_lines())]
    assert resumed == [e.public() for e in stored if e.id > 3]


def test_sse_follows_live_events_without_gap_or_duplicate(api: Api) -> None:
    hub = api.hub
    dep = _running(api)
    first = api.store.append_events(dep.id, [_event(1, "step_started", 1, step="repo")])
    url = f"/v1/deployments/{dep.id}/events"
    with api.client.stream("GET", url, headers=api.signed()) as r:
        messages = _sse(r.iter_lines())
        assert _as_stored(next(messages)) == first[0].public()
        # Subscribed before the backlog was read: what is published now arrives.
        assert hub.subscribers(dep.id) == 1
        second = api.store.append_events(dep.id, [_event(1, "log", 2, level="info", message="a")])
        publisher = threading.Thread(target=hub.publish_all, args=([*first, *second],))
        publisher.start()
        publisher.join()
        assert _as_stored(next(messages)) == second[0].public()  # the old one was dropped
        # Stored but never published (a gap), then the next one published: both, in order.
        gap = api.store.append_events(dep.id, [_event(1, "log", 3, level="info", message="b")])
        after = api.store.append_events(dep.id, [_event(1, "log", 4, level="info", message="c")])
        hub.publish_all(after)
        assert _as_stored(next(messages)) == gap[0].public()
        assert _as_stored(next(messages)) == after[0].public()
        tail = _finish(api, dep, publish=True)
        rest = [_as_stored(m) for m in messages]
    assert rest == [e.public() for e in tail]
    assert hub.subscribers(dep.id) == 0


def test_a_slow_subscriber_reads_what_overflowed_from_the_store(api: Api) -> None:
    api.hub = hub = EventHub(queue_size=1)
    api.control.hub = hub
    dep = _running(api)
    first = api.store.append_events(dep.id, [_event(1, "step_started", 1, step="repo")])
    url = f"/v1/deployments/{dep.id}/events"
    with api.client.stream("GET", url, headers=api.signed()) as r:
        messages = _sse(r.iter_lines())
        assert _as_stored(next(messages)) == first[0].public()
        burst = api.store.append_events(
            dep.id, [_event(1, "log", n, level="info", message=str(n)) for n in range(2, 12)]
        )
        hub.publish_all(burst)
        got = [_as_stored(next(messages)) for _ in burst]
        assert got == [e.public() for e in burst]
        tail = _finish(api, dep, publish=True)
        assert [_as_stored(m) for m in messages] == [e.public() for e in tail]


def test_a_stream_ends_when_the_runner_died_without_eof(api: Api) -> None:
    dep = _running(api)
    api.store.append_events(dep.id, [_event(1, "step_started", 1, step="repo")])
    api.store.update(dep.id, Patch(status=Status.FAILED, exit_code=137, error="oom-killed"))
    url = f"/v1/deployments/{dep.id}/events"
    with api.client.stream("GET", url, headers=api.signed()) as r:
        got = [_as_stored(m) for m in _sse(r.iter_lines())]
    assert [e["type"] for e in got] == ["step_started"]


def test_json_lines_equal_the_stored_events(api: Api) -> None:
    dep = _running(api)
    api.store.append_events(
        dep.id,
        [_event(1, "step_started", 1, step="repo"), _event(1, "log", 2, level="info", message="x")],
    )
    _finish(api, dep)
    stored = [e.public() for e in api.store.events(dep.id)]
    url = f"/v1/deployments/{dep.id}/events"
    for query, headers in [
        ("?format=jsonl", {}),
        ("", {"Accept": "application/x-ndjson"}),
        ("?format=jsonl&follow=1", {}),
    ]:
        r = api.get(url + query, headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line) for line in r.text.splitlines()] == stored
    r = api.get(url + "?format=jsonl&after=2")
    assert [json.loads(line) for line in r.text.splitlines()] == stored[2:]
    missing = api.get("/v1/deployments/dep_000000000000000000000000/events?format=jsonl")
    assert missing.status_code == 404


def test_json_lines_of_a_running_deployment_without_follow_stop_at_the_stored_ones(
    api: Api,
) -> None:
    dep = _running(api)
    api.store.append_events(dep.id, [_event(1, "step_started", 1, step="repo")])
    r = api.get(f"/v1/deployments/{dep.id}/events?format=jsonl")
    assert [json.loads(line)["type"] for line in r.text.splitlines()] == ["step_started"]


# -- actions ---------------------------------------------------------------------------------------


def test_cancel_retry_teardown(api: Api) -> None:
    dep = api.create()
    retry_queued = api.post(f"/v1/deployments/{dep.id}/retry")
    assert retry_queued.status_code == 409
    assert _error(retry_queued)["code"] == "not_retryable"
    cancelled = api.post(f"/v1/deployments/{dep.id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(f"/v1/deployments/{dep.id}/cancel")
    assert again.status_code == 409
    assert _error(again)["code"] == "not_cancellable"
    retried = api.post(f"/v1/deployments/{dep.id}/retry")
    assert retried.status_code == 202
    assert retried.json()["id"] == dep.id
    assert retried.json()["status"] == "queued"
    torn = api.post(f"/v1/deployments/{dep.id}/teardown")
    assert torn.status_code == 202
    assert torn.json()["action"] == "teardown"
    assert torn.json()["project_id"] == dep.project_id
    assert torn.json()["id"] != dep.id
    for action in ("cancel", "retry", "teardown"):
        r = api.post(f"/v1/deployments/dep_000000000000000000000000/{action}")
        assert r.status_code == 404
    running = api.store.claim("w", 4)
    assert running is not None
    r = api.post(f"/v1/deployments/{running.id}/cancel")
    assert r.status_code == 202
    assert r.json()["cancel_requested"] is True


def test_refusal_policy() -> None:
    def dep(status: Status) -> Deployment:
        return Deployment("dep_x", "p", "n", "/b", status, 1, "t", "t")

    assert refusal(Action.CANCEL, dep(Status.RUNNING)) is None
    assert refusal(Action.CANCEL, dep(Status.QUEUED)) is None
    for status in TERMINAL:
        assert refusal(Action.CANCEL, dep(status)) is not None
    assert refusal(Action.RETRY, dep(Status.LIVE)) is not None
    assert refusal(Action.RETRY, dep(Status.RUNNING)) is not None
    for status in (Status.FAILED, Status.CANCELLED, Status.UNHEALTHY):
        assert refusal(Action.RETRY, dep(status)) is None
    assert refusal(Action.TEARDOWN, dep(Status.LIVE)) is None


# -- health and metrics ----------------------------------------------------------------------------


def test_metrics_parse_and_count(api: Api) -> None:
    api.create()
    api.create("p2")
    api.client.post("/v1/deployments", content=BODY, headers={"content-type": "application/json"})
    assert api.client.get("/ui/").status_code == 401  # a page, without its session
    r = api.client.get("/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    by_status = {s.labels["status"]: s.value for s in families["forge_deployments"].samples}
    assert by_status["queued"] == 2
    assert by_status["live"] == 0
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["forge_http_requests"].samples
        if s.name == "forge_http_requests_total"
    }
    assert requests[("POST", "/v1/deployments", "202")] == 2
    assert requests[("POST", "/v1/deployments", "401")] == 1
    assert requests[("GET", "/ui/", "401")] == 1  # by template inside the pages' router too
    failures = {
        s.labels["reason"]: s.value
        for s in families["forge_hook_auth_failures"].samples
        if s.name == "forge_hook_auth_failures_total"
    }
    assert failures == {"missing": 1}
    assert "forge_events_ingested" in families


def test_two_apps_in_one_process_keep_their_own_metrics(
    api: Api, builds_root: Path, tmp_path: Path
) -> None:
    other_store = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    other_store.migrate()
    try:
        settings = WebSettings(hook_secret=SECRET, metrics=Metrics())
        other = create_app(idle_core(other_store, builds_root), settings)
        with TestClient(other) as client:
            assert client.get("/metrics").status_code == 200
    finally:
        other_store.close()


def test_healthz_reports_an_unreachable_store(
    database_url: str, builds_root: Path, tmp_path: Path
) -> None:
    store = open_store(database_url)
    store.migrate()
    settings = WebSettings(hook_secret=SECRET, metrics=Metrics())
    app = create_app(idle_core(store, builds_root), settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"ok": True, "store": "ok"}
        store.close()
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["ok"] is False
        assert "unreachable" in r.json()["store"]


# -- the pure parts --------------------------------------------------------------------------------


def test_resolve_build_dir(builds_root: Path) -> None:
    assert resolve_build_dir(builds_root, "app-1") == (builds_root / "app-1").resolve()
    with pytest.raises(BuildDirError, match="outside"):
        resolve_build_dir(builds_root, "app-1/../../..")
    with pytest.raises(BuildDirError, match="symlink"):
        resolve_build_dir(builds_root, str(builds_root / "escape"))
    with pytest.raises(BuildDirError, match="empty"):
        resolve_build_dir(builds_root, "  ")
    with pytest.raises(BuildDirError, match="builds root is unusable"):
        resolve_build_dir(builds_root / "nope", "app-1")


def test_sign_and_check_round_trip() -> None:
    body = b'{"a": 1}'
    headers = signing.sign(SECRET, body, 1_700_000_000)
    assert headers[signing.TIMESTAMP_HEADER] == "1700000000"
    verified = signing.check(headers, body, SECRET, NOW + 300)
    assert verified.signature == headers[signing.SIGNATURE_HEADER]
    assert verified.expires_at == NOW + 300
    with pytest.raises(signing.AuthError) as stale:
        signing.check(headers, body, SECRET, NOW + 301)
    assert stale.value.reason == "stale"
    fractional = signing.sign(SECRET, b"", 1_700_000_000.25)
    assert fractional[signing.TIMESTAMP_HEADER] == "1700000000.250000"
    assert signing.check(fractional, b"", SECRET, NOW).signature.startswith("sha256=")
