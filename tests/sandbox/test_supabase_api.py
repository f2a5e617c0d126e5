"""The emulated Supabase Management API and tenant endpoints over plain HTTP: lifecycle,
errors, keys, SQL, migrations, paging, pause/restore, rate limits, restart survival, and every
answer checked against the official OpenAPI excerpt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
import requests

from tests.support.openapi import validate
from tests.support.sandbox import SandboxProcess
from tests.support.supabase_api import Management, project_entry, reset_budget

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _fresh_budget(sandbox: SandboxProcess) -> Iterator[None]:
    reset_budget(sandbox)
    yield


def tenant(
    sandbox: SandboxProcess, ref: str, path: str, key: str | None = None
) -> requests.Response:
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", ref) + path
    headers = {"apikey": key} if key is not None else {}
    return requests.get(url, headers=headers, verify=sandbox.ca_file, timeout=30)


def keys_by_type(api: Management, ref: str, reveal: bool = False) -> dict[str, dict[str, Any]]:
    params = {"reveal": "true"} if reveal else {}
    answer = api("GET", f"/v1/projects/{ref}/api-keys", params=params)
    assert answer.status_code == 200, answer.text
    return {f"{k['type']}:{k['name']}": k for k in answer.json()}


# -- lifecycle -------------------------------------------------------------------------------
def test_status_moves_from_coming_up_to_active_healthy(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0.05)  # provisioning lasts 4.5 s
    created = api(
        "POST",
        "/v1/projects",
        json={"name": f"life-{unique}", "db_pass": "Life-pass-1", "organization_slug": api.org},
    )
    assert created.status_code == 201
    body = created.json()
    ref = body["ref"]
    assert body["status"] in ("UNKNOWN", "COMING_UP") and "database" not in body

    assert api.status(ref) == "COMING_UP"
    health = api("GET", f"/v1/projects/{ref}/health", params={"services": ["db", "auth"]})
    assert [(h["name"], h["status"], h["healthy"]) for h in health.json()] == [
        ("db", "COMING_UP", False),
        ("auth", "COMING_UP", False),
    ]
    early = api("DELETE", f"/v1/projects/{ref}")
    assert (early.status_code, early.json()) == (
        400,
        {"message": "Project not ready for deletion."},
    )
    assert (
        api("POST", f"/v1/projects/{ref}/database/query", json={"query": "select 1"}).status_code
        == 400
    )
    assert tenant(sandbox, ref, "/auth/v1/health", "any").status_code == 503

    seen = api.wait_status(ref)
    assert seen[0] == "COMING_UP" and seen[-1] == "ACTIVE_HEALTHY"
    health = api("GET", f"/v1/projects/{ref}/health", params={"services": "db,auth"})
    auth = health.json()[1]
    assert auth["status"] == "ACTIVE_HEALTHY" and auth["info"]["name"] == "GoTrue"

    deleted = api("DELETE", f"/v1/projects/{ref}")
    assert deleted.status_code == 200
    gone = deleted.json()
    assert isinstance(gone["id"], int) and gone["ref"] == ref and gone["name"] == f"life-{unique}"


def test_projects_and_their_deadlines_survive_a_restart(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    ready = api.create(f"keep-{unique}", db_pass="Keep-pass-1")
    api.query(ready, "create table kept (id int); insert into kept values (7)")
    publishable = keys_by_type(api, ready)["publishable:default"]["api_key"]
    sandbox.set_time_scale(1)  # realistic: 90 s provisioning, 2 s before keys exist
    slow = api.create(f"slow-{unique}")
    assert api("GET", f"/v1/projects/{slow}/api-keys").json() == []

    sandbox.restart()
    reset_budget(sandbox)
    assert api.status(ready) == "ACTIVE_HEALTHY"
    assert api.status(slow) == "COMING_UP"
    assert keys_by_type(api, ready)["publishable:default"]["api_key"] == publishable
    assert api.query(ready, "select id from kept") == [{"id": 7}]
    entry = project_entry(sandbox, ready)
    assert entry is not None and entry["db_pass"] == "Keep-pass-1"


def test_pause_and_restore(sandbox: SandboxProcess, api: Management, unique: str) -> None:
    sandbox.set_time_scale(0)
    password = "Pause-pass-1"
    ref = api.create(f"pause-{unique}", db_pass=password)
    url = api.db_url(ref, password)
    assert api("POST", f"/v1/projects/{ref}/restore").status_code == 400  # not paused
    assert api("POST", f"/v1/projects/{ref}/pause").status_code == 200
    assert api.status(ref) == "INACTIVE"
    assert api("POST", f"/v1/projects/{ref}/pause").status_code == 400
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    assert api("GET", f"/v1/projects/{ref}/restore").json() == {"available_versions": []}

    sandbox.set_time_scale(0.02)
    assert api("POST", f"/v1/projects/{ref}/restore").status_code == 200
    seen = api.wait_status(ref)
    assert seen[-1] == "ACTIVE_HEALTHY" and "INACTIVE" not in seen
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


# -- errors ----------------------------------------------------------------------------------
def test_errors_use_the_message_shape_and_the_providers_statuses(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    for token in ("", "sbp_" + "0" * 40):
        refused = Management(sandbox, token=token)("GET", "/v1/projects")
        assert (refused.status_code, refused.json()) == (401, {"message": "Unauthorized"})

    missing = "abcdefghijabcdefghij"
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("GET", "/api-keys"),
        ("GET", "/health?services=db"),
        ("POST", "/database/query"),
        ("GET", "/database/migrations"),
        ("GET", "/config/database/pooler"),
    ]:
        answer = api(method, f"/v1/projects/{missing}{path}", json={"name": "x", "query": "x"})
        assert answer.status_code == 404, (method, path)
        assert isinstance(answer.json()["message"], str)
    assert tenant(sandbox, missing, "/rest/v1/", "k").status_code == 404
    assert api("GET", "/v1/organizations/no-such-org").status_code == 404
    assert api("GET", "/v1/no/such/route").json()["message"]

    def create(raw: str) -> requests.Response:
        return api("POST", "/v1/projects", data=raw, headers={"Content-Type": "application/json"})

    assert create('{"name": ').status_code == 400
    assert create("[1, 2]").status_code == 400
    base = {"name": f"err-{unique}", "db_pass": "Err-pass-1", "organization_slug": api.org}
    bad_bodies: list[dict[str, Any]] = [
        {**base, "surprise": True},
        {k: v for k, v in base.items() if k != "db_pass"},
        {k: v for k, v in base.items() if k != "name"},
        {k: v for k, v in base.items() if k != "organization_slug"},
        {**base, "region": "mars-1"},
        {
            **base,
            "region": "us-east-1",
            "region_selection": {"type": "specific", "code": "us-east-1"},
        },
        {**base, "region_selection": {"type": "galaxy", "code": "x"}},
        {**base, "name": "x" * 257},
    ]
    for body in bad_bodies:
        answer = api("POST", "/v1/projects", json=body)
        assert answer.status_code == 400, body
        assert isinstance(answer.json()["message"], str)
    assert (
        api("POST", "/v1/projects", json={**base, "organization_slug": "other"}).status_code == 404
    )
    assert all(
        not p["name"].startswith("err-") for p in sandbox.resources()["supabase"]["projects"]
    )


def test_project_names_need_not_be_unique(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    name = f"twin-{unique}"
    first = api.create(name)
    second = api.create(name)
    assert first != second
    assert [p["ref"] for p in api("GET", "/v1/projects").json() if p["name"] == name] == [
        first,
        second,
    ]
    renamed = api("PATCH", f"/v1/projects/{second}", json={"name": f"{name}-b"})
    assert renamed.json() == {"id": renamed.json()["id"], "ref": second, "name": f"{name}-b"}
    assert api("PATCH", f"/v1/projects/{second}", json={"name": ""}).status_code == 400
    for ref in (first, second):
        assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


def test_region_selection_and_available_regions(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    specific = api.create(
        f"reg-{unique}", region_selection={"type": "specific", "code": "eu-west-2"}
    )
    grouped = api.create(f"grp-{unique}", region_selection={"type": "smartGroup", "code": "emea"})
    regions = {r["ref"]: r["region"] for r in api("GET", "/v1/projects").json()}
    assert (regions[specific], regions[grouped]) == ("eu-west-2", "eu-central-1")
    available = api("GET", "/v1/projects/available-regions", params={"organization_slug": api.org})
    assert "us-east-1" in {r["code"] for r in available.json()["all"]["specific"]}
    assert api("GET", "/v1/projects/available-regions").status_code == 400
    for ref in (specific, grouped):
        assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


# -- keys and tenant endpoints ---------------------------------------------------------------
def test_api_keys_open_the_tenant_endpoints(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    ref = api.create(f"keys-{unique}")
    other = api.create(f"other-{unique}")
    masked = keys_by_type(api, ref)
    revealed = keys_by_type(api, ref, reveal=True)
    secret = revealed["secret:default"]["api_key"]
    assert secret.startswith("sb_secret_") and "•" not in secret
    assert masked["secret:default"]["api_key"] != secret
    assert masked["secret:default"]["api_key"].startswith(masked["secret:default"]["prefix"])
    assert revealed["publishable:default"]["api_key"].startswith("sb_publishable_")
    for role in ("anon", "service_role"):
        claims = jwt.decode(
            revealed[f"legacy:{role}"]["api_key"], options={"verify_signature": False}
        )
        assert (claims["role"], claims["ref"], claims["iss"]) == (role, ref, "supabase")
        assert jwt.get_unverified_header(revealed[f"legacy:{role}"]["api_key"])["alg"] == "HS256"

    publishable = revealed["publishable:default"]["api_key"]
    for key in (publishable, secret):
        auth = tenant(sandbox, ref, "/auth/v1/health", key).json()
        assert auth["name"] == "GoTrue" and auth["version"]
        assert tenant(sandbox, ref, "/storage/v1/version", key).text.strip()
    assert tenant(sandbox, ref, "/rest/v1/", secret).json()["info"]["version"]
    # Today's project: the legacy pair is listed but disabled, so the gateway refuses it.
    for role in ("anon", "service_role"):
        refused = tenant(sandbox, ref, "/auth/v1/health", revealed[f"legacy:{role}"]["api_key"])
        assert (refused.status_code, refused.json()["message"]) == (
            401,
            "Legacy API keys are disabled",
        )
    assert tenant(sandbox, ref, "/auth/v1/health").status_code == 401
    assert tenant(sandbox, ref, "/auth/v1/health", "nope").status_code == 401
    other_key = keys_by_type(api, other, reveal=True)["publishable:default"]["api_key"]
    assert tenant(sandbox, ref, "/auth/v1/health", other_key).status_code == 401
    for project in (ref, other):
        assert api("DELETE", f"/v1/projects/{project}").status_code == 200


# -- SQL and migrations ----------------------------------------------------------------------
def test_query_runs_in_the_projects_database_as_its_role(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    ref = api.create(f"sql-{unique}")
    rows = api.query(
        ref,
        "create table notes (id int primary key, body jsonb, at timestamptz default now());"
        "insert into notes (id, body) values (1, '{\"a\": 1}');"
        "select id, body, current_user as who from notes",
    )
    assert rows == [{"id": 1, "body": {"a": 1}, "who": f"postgres.{ref}"}]
    with_params = api(
        "POST",
        f"/v1/projects/{ref}/database/query",
        json={"query": "select $1::int + 1 as n, $2::text as t", "parameters": [41, "50%"]},
    )
    assert (with_params.status_code, with_params.json()) == (201, [{"n": 42, "t": "50%"}])
    failed = api("POST", f"/v1/projects/{ref}/database/query", json={"query": "select * from nope"})
    assert failed.status_code == 400 and "does not exist" in failed.json()["message"]
    read_only = api(
        "POST",
        f"/v1/projects/{ref}/database/query",
        json={"query": "insert into notes (id) values (2)", "read_only": True},
    )
    assert read_only.status_code == 400
    assert api.query(ref, "select count(*) as n from notes") == [{"n": 1}]
    assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


def test_migration_endpoints_keep_the_clis_history_table(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    ref = api.create(f"mig-{unique}")
    base = f"/v1/projects/{ref}/database/migrations"
    assert api("GET", base).json() == []
    once = {"Idempotency-Key": f"k-{unique}"}
    body = {"query": "create table widgets (id int)", "name": "widgets"}
    assert api("POST", base, json=body, headers=once).status_code == 200
    assert api("POST", base, json=body, headers=once).status_code == 200  # not re-applied
    upsert = {
        "query": "create table gadgets (id int)",
        "name": "gadgets",
        "rollback": "drop table gadgets",
    }
    assert api("PUT", base, json=upsert).status_code == 200  # recorded, not applied
    failing = api("POST", base, json={"query": "create table w2 (id int); select * from nope"})
    assert failing.status_code == 400

    history = api("GET", base).json()
    assert [m["name"] for m in history] == ["widgets", "gadgets"]
    first = api("GET", f"{base}/{history[0]['version']}").json()
    assert first["statements"] == [body["query"]] and first["idempotency_key"] == f"k-{unique}"
    assert api("GET", f"{base}/{history[1]['version']}").json()["rollback"] == [
        "drop table gadgets"
    ]
    assert api("GET", f"{base}/19990101000000").status_code == 404
    tables = api.query(
        ref,
        "select to_regclass('widgets')::text as w, to_regclass('gadgets')::text as g, "
        "to_regclass('w2')::text as w2",
    )
    assert tables == [{"w": "widgets", "g": None, "w2": None}]
    entry = project_entry(sandbox, ref)
    assert entry is not None and [m["name"] for m in entry["migrations"]] == ["widgets", "gadgets"]
    assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


# -- listing, health parameters, rate limit --------------------------------------------------
def test_organization_projects_page_search_sort_and_filter(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    refs = [api.create(f"page-{unique}-{n}") for n in ("a", "b", "c")]
    path = f"/v1/organizations/{api.org}/projects"
    search = f"page-{unique}"
    page = api("GET", path, params={"search": search, "limit": 2, "sort": "name_desc"}).json()
    assert [p["name"][-1] for p in page["projects"]] == ["c", "b"]
    assert page["pagination"] == {"count": 3, "limit": 2, "offset": 0}
    rest = api("GET", path, params={"search": search, "limit": 2, "offset": 2}).json()
    assert [p["name"][-1] for p in rest["projects"]] == ["c"]
    paused = api("GET", path, params={"search": search, "statuses": "INACTIVE"}).json()
    assert paused["projects"] == [] and paused["pagination"]["count"] == 0
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"sort": "size"}, {"statuses": "X"}):
        assert api("GET", path, params=bad).status_code == 400, bad
    organization = api("GET", f"/v1/organizations/{api.org}").json()
    assert organization["id"] == api.org and organization["name"]
    for ref in refs:
        assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


def test_health_takes_repeated_or_comma_separated_services(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    sandbox.set_time_scale(0)
    ref = api.create(f"health-{unique}")
    path = f"/v1/projects/{ref}/health"
    repeated = api("GET", path, params={"services": ["rest", "storage"]}).json()
    comma = api("GET", path, params={"services": "rest,storage"}).json()
    assert repeated == comma and [h["name"] for h in comma] == ["rest", "storage"]
    assert all(h["status"] == "ACTIVE_HEALTHY" for h in comma)
    for bad in ({}, {"services": "dns"}, {"services": "db", "timeout_ms": 20000}):
        assert api("GET", path, params=bad).status_code == 400, bad
    assert api("DELETE", f"/v1/projects/{ref}").status_code == 200


def test_rate_limit_counts_calls_per_token_and_answers_429_over_budget(
    sandbox: SandboxProcess, api: Management
) -> None:
    first, second = api("GET", "/v1/profile"), api("GET", "/v1/profile")
    assert first.headers["x-ratelimit-limit"] == "120"
    assert int(first.headers["x-ratelimit-remaining"]) == 119
    assert int(second.headers["x-ratelimit-remaining"]) == 118
    assert 1 <= int(second.headers["x-ratelimit-reset"]) <= 60
    assert Management(sandbox, token="sbp_" + "1" * 40)("GET", "/v1/profile").status_code == 401
    assert int(api("GET", "/v1/profile").headers["x-ratelimit-remaining"]) == 117
    try:
        sandbox.admin("PUT", "supabase/rate-limit", {"limit": 3}).raise_for_status()
        reset_budget(sandbox)
        assert [api("GET", "/v1/organizations").status_code for _ in range(3)] == [200] * 3
        over = api("GET", "/v1/organizations")
        assert over.status_code == 429 and isinstance(over.json()["message"], str)
        assert over.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(over.headers["x-ratelimit-reset"]) <= 60
        sandbox.admin("PUT", "supabase/rate-limit", {"limit": 3, "window_s": 5}).raise_for_status()
        reset_budget(sandbox)
        assert 1 <= int(api("GET", "/v1/organizations").headers["x-ratelimit-reset"]) <= 5
        for bad in ({"limit": 0}, {"limit": 3, "window_s": 0}, {"limit": 3, "window_s": "5"}, []):
            refused = sandbox.admin("PUT", "supabase/rate-limit", bad)
            assert refused.status_code == 400 and "window_s" in refused.json()["error"]
    finally:
        sandbox.admin("PUT", "supabase/rate-limit", {"limit": 120, "window_s": 60})
        reset_budget(sandbox)
    assert sandbox.admin("GET", "supabase/rate-limit").json() == {"limit": 120, "window_s": 60.0}
    assert api("GET", "/v1/organizations").status_code == 200


# -- the official document -------------------------------------------------------------------
def test_every_answer_validates_against_the_management_api_document(
    sandbox: SandboxProcess, api: Management, unique: str
) -> None:
    """A sweep of every operation of supabase-management.json, replayed through openapi-core."""
    sandbox.set_time_scale(0)
    start = len(sandbox.traffic())
    api("GET", "/v1/profile")
    api("GET", "/v1/organizations")
    api("GET", f"/v1/organizations/{api.org}")
    api("GET", f"/v1/organizations/{api.org}/projects", params={"limit": 5})
    api("GET", "/v1/projects/available-regions", params={"organization_slug": api.org})
    ref = api.create(f"spec-{unique}", region="us-east-1")
    api("GET", "/v1/projects")
    api("GET", f"/v1/projects/{ref}")
    api("PATCH", f"/v1/projects/{ref}", json={"name": f"spec-{unique}-renamed"})
    api(
        "GET",
        f"/v1/projects/{ref}/health",
        params={
            "services": list(
                (
                    "auth",
                    "db",
                    "db_postgres_user",
                    "pooler",
                    "realtime",
                    "rest",
                    "storage",
                    "pg_bouncer",
                )
            )
        },
    )
    api("GET", f"/v1/projects/{ref}/api-keys")
    api("GET", f"/v1/projects/{ref}/api-keys", params={"reveal": "true"})
    api("POST", f"/v1/projects/{ref}/database/query", json={"query": "select 1 as one"})
    migrations = f"/v1/projects/{ref}/database/migrations"
    api("POST", migrations, json={"query": "create table s (id int)", "name": "s"})
    api("PUT", migrations, json={"query": "create table t (id int)", "name": "t"})
    listed = api("GET", migrations).json()
    api("GET", f"{migrations}/{listed[0]['version']}")
    api("POST", f"/v1/projects/{ref}/pause")
    api("GET", f"/v1/projects/{ref}/restore")
    api("POST", f"/v1/projects/{ref}/restore")
    api("DELETE", f"/v1/projects/{ref}")

    entries = [e for e in sandbox.traffic()[start:] if e["service"] == "supabase"]
    report = validate(entries)
    assert not report.failures, "\n".join(report.failures)
    assert len(report.validated["supabase"]) == len(entries)
