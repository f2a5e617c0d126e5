"""Supabase as it is today (late 2026), judged by real clients: supabase-py and supabase-js on a
project's Data API, the real `supabase db push` for its migrations, and the extended OpenAPI
excerpt for every new Management API answer.

Today's defaults (every new project): the legacy JWT pair listed but disabled, new `public`
tables granted to no API role, the schema root refused to public keys, users' tokens signed
ES256. The 2025 behaviour stays one named setting (`defaults`), per project through the admin
API and per sandbox through `forge-sandbox serve --supabase-defaults 2025`: both paths run here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from postgrest.exceptions import APIError

from sandbox.supabase import guard
from tests.support.clis import REPO, CliRunner
from tests.support.openapi import SPECS, validate
from tests.support.sandbox import SandboxProcess
from tests.support.supabase_api import (
    Management,
    data_client,
    keys_of,
    project_entry,
    user_token,
)

pytestmark = pytest.mark.postgres
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


@pytest.fixture
def project(sandbox: SandboxProcess, api: Management, unique: str) -> Iterator[str]:
    """A new ACTIVE_HEALTHY project of today's defaults (deleted afterwards)."""
    sandbox.set_time_scale(0)
    ref = api.create(f"today-{unique}", db_pass="Today-pass-1")
    yield ref
    api("DELETE", f"/v1/projects/{ref}")


def rest(
    sandbox: SandboxProcess, ref: str, path: str, key: str, **headers: str
) -> requests.Response:
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", ref) + path
    return requests.get(url, headers={"apikey": key, **headers}, verify=sandbox.ca_file, timeout=30)


def push(cli: CliRunner, api: Management, ref: str, workdir: Path, files: dict[str, str]) -> None:
    """Migrations applied by the real `supabase db push`, as a deploy applies them."""
    folder = workdir / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    cli.run(
        [
            "supabase",
            *cli.supabase_args,
            "db",
            "push",
            "--db-url",
            api.db_url(ref, "Today-pass-1"),
            "--yes",
        ],
        cwd=workdir,
    )


def refused_code(call: Any) -> str:
    with pytest.raises(APIError) as refused:
        call.execute()
    return str(refused.value.code)


# -- keys, grants and the schema root ---------------------------------------------------------
@pytest.mark.clis
def test_a_new_project_exposes_nothing_it_was_not_granted(
    sandbox: SandboxProcess, api: Management, project: str, cli: CliRunner, tmp_path: Path
) -> None:
    keys = keys_of(sandbox, project)
    assert project_entry(sandbox, project)["defaults"] == "2026"  # type: ignore[index]
    assert api("GET", f"/v1/projects/{project}/api-keys/legacy").json() == {"enabled": False}
    listed = {k["name"] for k in api("GET", f"/v1/projects/{project}/api-keys").json()}
    assert {"anon", "service_role", "default"} <= listed  # disabled, still listed

    push(
        cli,
        api,
        project,
        tmp_path,
        {
            "20261201000000_notes.sql": "create table public.notes (id int primary key, body text);"
            "\ninsert into public.notes values (1, 'kept private');\n",
            "20261201000001_shared.sql": "create table public.shared (id int primary key);\n"
            "insert into public.shared values (7);\n"
            "grant select on public.shared to anon, authenticated, service_role;\n",
        },
    )
    public = data_client(sandbox, project, keys["publishable"])
    secret = data_client(sandbox, project, keys["secret"])
    # No GRANT: every API role is refused, with PostgREST's 42501 body and status.
    assert refused_code(public.table("notes").select("*")) == "42501"
    assert refused_code(secret.table("notes").select("*")) == "42501"
    anon = rest(sandbox, project, "/rest/v1/notes", keys["publishable"])
    assert anon.status_code == 401 and anon.json() == {
        "code": "42501",
        "details": None,
        "hint": None,
        "message": "permission denied for table notes",
    }
    assert rest(sandbox, project, "/rest/v1/notes", keys["secret"]).status_code == 403
    assert public.table("shared").select("id").execute().data == [{"id": 7}]

    # The legacy JWTs are refused as API keys once disabled.
    with pytest.raises(APIError) as legacy:
        data_client(sandbox, project, keys["anon"]).table("shared").select("id").execute()
    assert legacy.value.message == "Legacy API keys are disabled"

    # The schema root: refused to the publishable key, read with the secret key.
    root = rest(sandbox, project, "/rest/v1/", keys["publishable"])
    assert (root.status_code, root.json()) == (
        403,
        {
            "message": "Access to schema is forbidden",
            "hint": "Accessing the schema via the Data API is only allowed using a secret API key.",
        },
    )
    document = rest(sandbox, project, "/rest/v1/", keys["secret"]).json()
    assert "/shared" in document["paths"] and "/notes" not in document["paths"]

    # A secret key from a browser, and a bearer that is another key, are refused.
    browser = rest(sandbox, project, "/rest/v1/shared", keys["secret"], **{"User-Agent": BROWSER})
    assert (browser.status_code, browser.json()["message"]) == (
        401,
        "Forbidden use of secret API key in browser",
    )
    assert rest(
        sandbox, project, "/rest/v1/shared", keys["publishable"], **{"User-Agent": BROWSER}
    ).ok
    mixed = rest(
        sandbox,
        project,
        "/rest/v1/shared",
        keys["publishable"],
        Authorization=f"Bearer {keys['secret']}",
    )
    assert (mixed.status_code, mixed.json()["code"]) == (401, "PGRST301")


def test_users_tokens_verify_against_the_projects_signing_keys(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    keys = keys_of(sandbox, project)
    listed = api("GET", f"/v1/projects/{project}/config/auth/signing-keys").json()["keys"]
    assert [(k["algorithm"], k["status"]) for k in listed] == [
        ("ES256", "in_use"),
        ("HS256", "previously_used"),
    ]
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", project)
    published = requests.get(
        f"{url}/auth/v1/.well-known/jwks.json", verify=sandbox.ca_file, timeout=30
    ).json()  # public: no API key needed
    assert published == {"keys": [listed[0]["public_jwk"]]}
    assert listed[0]["public_jwk"]["kid"] == keys["signing_key"]["kid"]

    api.query(
        project,
        "create table public.mine (id int primary key, owner uuid not null);"
        "alter table public.mine enable row level security;"
        "create policy own on public.mine for select to authenticated using (owner = auth.uid());"
        "grant select on public.mine to authenticated;"
        "insert into public.mine values (1, '11111111-1111-4111-8111-111111111111'),"
        " (2, '22222222-2222-4222-8222-222222222222');",
    )
    alice = "11111111-1111-4111-8111-111111111111"
    for algorithm in ("ES256", "HS256"):  # today's signing key, and the legacy secret
        token = user_token(keys, alice, algorithm=algorithm)
        client = data_client(sandbox, project, keys["publishable"], user=token)
        assert client.table("mine").select("id").execute().data == [{"id": 1}]
        who = rest(
            sandbox, project, "/auth/v1/user", keys["publishable"], Authorization=f"Bearer {token}"
        )
        assert (who.json()["id"], who.json()["role"]) == (alice, "authenticated")
    forged = jwt.encode(
        {"sub": alice, "role": "authenticated"},
        keys["signing_key"]["private_pem"],
        algorithm="ES256",
        headers={"kid": "00000000-0000-4000-8000-000000000000"},
    )
    client = data_client(sandbox, project, keys["publishable"], user=forged)
    assert refused_code(client.table("mine").select("id")) == "PGRST301"
    expired = user_token(keys, alice, expires_in=-60)
    expired_client = data_client(sandbox, project, keys["publishable"], user=expired)
    assert refused_code(expired_client.table("mine").select("id")) == "PGRST303"


def test_api_keys_are_made_renamed_and_deleted_and_the_legacy_pair_switched(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    keys = keys_of(sandbox, project)
    base = f"/v1/projects/{project}/api-keys"
    made = api(
        "POST", base, params={"reveal": "true"}, json={"type": "secret", "name": "forge_deploy"}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["api_key"].startswith("sb_secret_") and key["secret_jwt_template"] == {
        "role": "service_role"
    }
    assert rest(sandbox, project, "/rest/v1/", key["api_key"]).status_code == 200
    masked = api("GET", f"{base}/{key['id']}").json()
    assert "•" in masked["api_key"] and masked["name"] == "forge_deploy"
    assert api("GET", f"{base}/{key['id']}", params={"reveal": "true"}).json() == key
    assert api("GET", f"{base}/anon").json()["type"] == "legacy"
    for body, status in (
        ({"type": "secret", "name": "forge_deploy"}, 409),
        ({"type": "secret", "name": "Bad Name"}, 400),
        ({"type": "publishable", "name": "second_one"}, 400),
        ({"type": "legacy", "name": "old_one"}, 400),
        ({"name": "no_type"}, 400),
    ):
        assert api("POST", base, json=body).status_code == status, body
    renamed = api("PATCH", f"{base}/{key['id']}", json={"name": "forge_rotated"})
    assert renamed.json()["name"] == "forge_rotated"
    assert api("PATCH", f"{base}/anon", json={"name": "nope_nope"}).status_code == 400
    assert api("DELETE", f"{base}/{key['id']}").json()["id"] == key["id"]
    assert api("GET", f"{base}/{key['id']}").status_code == 404
    assert rest(sandbox, project, "/rest/v1/", key["api_key"]).status_code == 401

    legacy = f"{base}/legacy"
    assert api("PUT", legacy, params={"enabled": "true"}).json() == {"enabled": True}
    assert rest(sandbox, project, "/auth/v1/health", keys["anon"]).status_code == 200
    assert api("PUT", legacy, params={"enabled": "false"}).json() == {"enabled": False}
    assert rest(sandbox, project, "/auth/v1/health", keys["service_role"]).status_code == 401
    assert api("PUT", legacy).status_code == 400


# -- scoped tokens, pausing, the auth config --------------------------------------------------
def test_a_scoped_token_is_refused_what_it_lacks_naming_it(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    issued = sandbox.admin(
        "POST", "supabase/tokens", {"permissions": ["projects_read", "database_read"]}
    )
    assert issued.status_code == 201 and issued.json()["permissions"] == [
        "database_read",
        "projects_read",
    ]
    scoped = Management(sandbox, token=issued.json()["token"])
    assert any(p["ref"] == project for p in scoped("GET", "/v1/projects").json())
    create = scoped("POST", "/v1/projects", json={"name": "x", "db_pass": "y" * 12})
    assert create.status_code == 403
    assert create.json()["missing_permissions"] == ["organization_projects_create"]
    assert "organization_projects_create" in create.json()["message"]
    assert scoped("GET", f"/v1/projects/{project}/api-keys").json()["missing_permissions"] == [
        "api_gateway_keys_read"
    ]
    patch = scoped("PATCH", f"/v1/projects/{project}/config/auth", json={"site_url": "https://x"})
    assert patch.json()["missing_permissions"] == ["auth_config_write", "project_admin_write"]
    # `database/query` is allowed by either database_write or database_read.
    query = {"query": "select 1 as one"}
    assert scoped("POST", f"/v1/projects/{project}/database/query", json=query).status_code == 201
    assert "x-ratelimit-remaining" in create.headers  # a refusal still spends the budget
    unknown = sandbox.admin("POST", "supabase/tokens", {"permissions": ["database:write"]})
    assert unknown.status_code == 400 and "database:write" in unknown.json()["error"]
    assert Management(sandbox, token="sbp_" + "2" * 40)("GET", "/v1/projects").status_code == 401


def test_the_permission_table_is_the_documents() -> None:
    document = json.loads((SPECS / "supabase-management.json").read_text())
    for method, path, alternatives in guard.OPERATIONS:
        operation = document["paths"][path][method.lower()]
        assert [list(a) for a in alternatives] == operation["x-fga-permissions"], (method, path)
    assert guard.required("GET", "/v1/projects/abcdefghijabcdefghij/api-keys/legacy") == (
        ("api_gateway_keys_read",),
    )
    assert guard.required("GET", "/v1/projects/abcdefghijabcdefghij/config/database/pooler") is None


def test_a_paused_project_is_restored_through_restoring(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    keys = keys_of(sandbox, project)
    paused = sandbox.admin("POST", f"supabase/projects/{project}/pause")
    assert paused.json() == {"status": "INACTIVE"}
    assert api.status(project) == "INACTIVE"
    assert rest(sandbox, project, "/auth/v1/health", keys["publishable"]).status_code == 503
    assert sandbox.admin("POST", f"supabase/projects/{project}/pause").status_code == 409
    sandbox.set_time_scale(0.03)  # RESTORING for 2.7 s
    assert api("POST", f"/v1/projects/{project}/restore").status_code == 200
    assert api.status(project) == "RESTORING"
    assert api("POST", f"/v1/projects/{project}/restore").status_code == 400  # one restore
    assert api.wait_status(project)[-1] == "ACTIVE_HEALTHY"
    assert rest(sandbox, project, "/auth/v1/health", keys["publishable"]).status_code == 200


def test_the_auth_config_keeps_site_url_and_the_redirect_list(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    path = f"/v1/projects/{project}/config/auth"
    first = api("GET", path).json()
    assert (first["site_url"], first["uri_allow_list"], first["jwt_exp"]) == (
        "http://localhost:3000",
        "",
        3600,
    )
    change = {
        "site_url": "https://shop.example.com",
        "uri_allow_list": "https://shop.example.com/**,http://localhost:3000/**",
    }
    assert api("PATCH", path, json=change).json()["site_url"] == "https://shop.example.com"
    kept = api("GET", path).json()
    assert {k: kept[k] for k in change} == change and kept["jwt_exp"] == 3600
    assert project_entry(sandbox, project)["auth"] == change  # type: ignore[index]
    for bad in (
        {"site_url": "https://a.example,https://b.example"},
        {"site_url": 42},
        {"jwt_exp": "long"},
        {"disable_signup": "yes"},
        {"no_such_field": True},
        {"custom_oauth_max_providers": 9},
    ):
        assert api("PATCH", path, json=bad).status_code == 400, bad
    assert api("GET", path).json()["site_url"] == "https://shop.example.com"


# -- the 2025 behaviour: per project, and per sandbox -----------------------------------------
def test_a_project_switched_to_the_2025_defaults_behaves_as_in_2025(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    keys = keys_of(sandbox, project)
    api.query(project, "create table public.before (id int); insert into public.before values (1)")
    switched = sandbox.admin("PUT", f"supabase/projects/{project}/defaults", {"defaults": "2025"})
    assert switched.json() == {"defaults": "2025"}
    assert api("GET", f"/v1/projects/{project}/api-keys/legacy").json() == {"enabled": True}
    api.query(project, "create table public.after (id int); insert into public.after values (2)")
    legacy = data_client(sandbox, project, keys["anon"])
    assert legacy.table("after").select("id").execute().data == [{"id": 2}]  # granted by default
    assert refused_code(legacy.table("before").select("id")) == "42501"  # existing kept its grants
    assert rest(sandbox, project, "/rest/v1/", keys["publishable"]).status_code == 200
    statuses = api("GET", f"/v1/projects/{project}/config/auth/signing-keys").json()["keys"]
    assert [k["status"] for k in statuses] == ["standby", "in_use"]

    back = sandbox.admin("PUT", f"supabase/projects/{project}/defaults", {"defaults": "2026"})
    assert back.json() == {"defaults": "2026"}
    api.query(project, "create table public.latest (id int)")
    public = data_client(sandbox, project, keys["publishable"])
    assert refused_code(public.table("latest").select("id")) == "42501"
    assert public.table("after").select("id").execute().data == [{"id": 2}]  # keeps its grant
    for bad in ({"defaults": "2024"}, {}, []):
        answer = sandbox.admin("PUT", f"supabase/projects/{project}/defaults", bad)
        assert answer.status_code == 400, bad
    assert (
        sandbox.admin("GET", "supabase/projects/abcdefghijabcdefghij/defaults").status_code == 404
    )


def test_the_serve_flag_gives_every_new_project_the_2025_defaults(
    test_root: Path, postgres_url: str, unique: str
) -> None:
    handle = SandboxProcess(test_root / f"sandbox-2025-{unique}", postgres_url, time_scale=0)
    info = handle.start(extra=["--supabase-defaults", "2025"])
    try:
        assert info["supabase"]["defaults"] == "2025"
        api = Management(handle)
        ref = api.create(f"old-{unique}")
        keys = keys_of(handle, ref)
        assert api("GET", f"/v1/projects/{ref}/api-keys/legacy").json() == {"enabled": True}
        api.query(ref, "create table public.open (id int); insert into public.open values (3)")
        legacy = data_client(handle, ref, keys["anon"])
        assert legacy.table("open").select("id").execute().data == [{"id": 3}]
        assert rest(handle, ref, "/rest/v1/", keys["anon"]).json()["paths"]["/open"]
        assert api("DELETE", f"/v1/projects/{ref}").status_code == 200
    finally:
        assert handle.stop() == 0
    bad = subprocess.run(
        [*_sandbox_cli(), "serve", "--supabase-defaults", "2024", "--state-dir", str(test_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "--supabase-defaults" in bad.stderr


def _sandbox_cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "sandbox.cli"]


# -- supabase-js, and the document ------------------------------------------------------------
@pytest.mark.clis
def test_supabase_js_reads_a_granted_table_and_is_refused_an_ungranted_one(
    sandbox: SandboxProcess, api: Management, project: str, cli: CliRunner
) -> None:
    keys = keys_of(sandbox, project)
    api.query(
        project,
        "create table public.open (id int); insert into public.open values (5);"
        "grant select on public.open to anon; create table public.closed (id int);",
    )
    script = """
import { createClient } from "@supabase/supabase-js";
const client = createClient(process.env.URL, process.env.KEY,
  { auth: { persistSession: false, autoRefreshToken: false } });
const open = await client.from("open").select("id");
const closed = await client.from("closed").select("id");
console.log(JSON.stringify({ open: open.data, closed: closed.error, status: closed.status }));
"""
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", project)
    result = cli.run(
        ["node", "--input-type=module", "-e", script],
        cwd=REPO,
        env={"URL": url, "KEY": keys["publishable"]},
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["open"] == [{"id": 5}]
    assert (seen["closed"]["code"], seen["status"]) == ("42501", 401)


def test_every_new_answer_validates_against_the_extended_document(
    sandbox: SandboxProcess, api: Management, project: str
) -> None:
    start = len(sandbox.traffic())
    base = f"/v1/projects/{project}"
    api("GET", f"{base}/api-keys/legacy")
    api("PUT", f"{base}/api-keys/legacy", params={"enabled": "true"})
    made = api("POST", f"{base}/api-keys", json={"type": "secret", "name": "sweep_key"}).json()
    api("GET", f"{base}/api-keys/{made['id']}", params={"reveal": "true"})
    api("PATCH", f"{base}/api-keys/{made['id']}", json={"description": "swept"})
    api("DELETE", f"{base}/api-keys/{made['id']}")
    api("GET", f"{base}/config/auth")
    api("PATCH", f"{base}/config/auth", json={"site_url": "https://sweep.example"})
    api("GET", f"{base}/config/auth/signing-keys")
    api("POST", f"{base}/database/query/read-only", json={"query": "select 1 as one"})
    scoped = sandbox.admin("POST", "supabase/tokens", {"permissions": ["projects_read"]}).json()
    Management(sandbox, token=scoped["token"])("GET", f"{base}/api-keys")  # the 403
    entries = [e for e in sandbox.traffic()[start:] if e["service"] == "supabase"]
    report = validate(entries)
    assert not report.failures, "\n".join(report.failures)
    assert len(report.validated["supabase"]) == len(entries) == 11
