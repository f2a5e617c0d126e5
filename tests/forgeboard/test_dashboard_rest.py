"""The sandbox's PostgREST for the dashboard project (today's defaults), judged by supabase-py:
the kit's migration pushed by the real CLI, its grants, RLS with two users' JWTs, the secret
key past RLS, inserts, updates, upserts and PostgREST's error bodies."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from postgrest.exceptions import APIError
from supabase import Client

from tests.forgeboard.conftest import Dashboard

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def _project(dashboard: Dashboard, owner: str) -> str:
    project_id = f"proj_{uuid.uuid4().hex[:10]}"
    service = dashboard.client(dashboard.secret_key)
    service.table("projects").insert(
        {"id": project_id, "owner_id": owner, "name": "shop", "build_dir": "shop"}
    ).execute()
    return project_id


def test_the_migration_is_pushed_with_rls_and_realtime(dashboard: Dashboard) -> None:
    assert "Finished supabase db push." in dashboard.push_output
    with psycopg.connect(dashboard.db_url) as conn:
        rls = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.deployments'::regclass"
        ).fetchone()
        published = conn.execute(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = 'supabase_realtime' "
            "AND schemaname = 'public' AND tablename = 'deployments'"
        ).fetchone()
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'deployments'"
            ).fetchall()
        ]
    assert rls == (True,)
    assert published == (1,)
    assert not [c for c in columns if any(w in c for w in ("key", "secret", "token", "pass"))]


def test_each_user_reads_only_their_own_deployments(dashboard: Dashboard) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    as_alice = dashboard.client(user_token=dashboard.user_token(alice))
    as_bob = dashboard.client(user_token=dashboard.user_token(bob))
    mine = {}
    for who, client in (("alice", as_alice), ("bob", as_bob)):
        owner = alice if who == "alice" else bob
        project = _project(dashboard, owner)
        inserted = (
            client.table("deployments")
            .insert({"request_id": f"req-{who}", "project_id": project})
            .execute()
        )
        row = inserted.data[0]
        assert row["owner_id"] == owner and row["status"] == "queued" and row["version"] == 0
        mine[who] = row["id"]

    seen_by_alice = {r["id"] for r in as_alice.table("deployments").select("id").execute().data}
    seen_by_bob = {r["id"] for r in as_bob.table("deployments").select("id").execute().data}
    assert mine["alice"] in seen_by_alice and mine["bob"] not in seen_by_alice
    assert mine["bob"] in seen_by_bob and mine["alice"] not in seen_by_bob
    # An eq filter on another user's row finds nothing, it does not fail.
    other = as_alice.table("deployments").select("*").eq("id", mine["bob"]).execute()
    assert other.data == []
    # The anon key alone reads nothing: the table is not granted to anon (401, PostgREST's).
    with pytest.raises(APIError) as anon:
        dashboard.client().table("deployments").select("*").execute()
    assert anon.value.code == "42501"
    # The service key bypasses RLS.
    service = dashboard.client(dashboard.secret_key)
    both = service.table("deployments").select("id").in_("id", list(mine.values())).execute()
    assert {r["id"] for r in both.data} == set(mine.values())


def test_users_cannot_write_what_forge_deploy_writes(dashboard: Dashboard) -> None:
    user = str(uuid.uuid4())
    as_user = dashboard.client(user_token=dashboard.user_token(user))
    project = _project(dashboard, user)
    with pytest.raises(APIError) as preset:
        as_user.table("deployments").insert(
            {"request_id": "r1", "project_id": project, "status": "live"}
        ).execute()
    assert preset.value.code == "42501"
    assert "row-level security" in preset.value.message
    row = (
        as_user.table("deployments")
        .insert({"request_id": "r2", "project_id": project})
        .execute()
        .data[0]
    )
    with pytest.raises(APIError) as update:
        as_user.table("deployments").update({"status": "live"}).eq("id", row["id"]).execute()
    assert update.value.code == "42501"
    with pytest.raises(APIError) as someone_else:
        as_user.table("deployments").insert(
            {"request_id": "r3", "project_id": project, "owner_id": str(uuid.uuid4())}
        ).execute()
    assert someone_else.value.code == "42501"


def test_upsert_update_and_error_bodies(dashboard: Dashboard) -> None:
    user = str(uuid.uuid4())
    project = _project(dashboard, user)
    service = dashboard.client(dashboard.secret_key)
    first = (
        service.table("deployments")
        .upsert(
            {"request_id": "click-1", "project_id": project, "owner_id": user},
            on_conflict="owner_id,request_id",
        )
        .execute()
        .data[0]
    )
    again = (
        service.table("deployments")
        .upsert(
            {"request_id": "click-1", "project_id": project, "owner_id": user, "step": "x"},
            on_conflict="owner_id,request_id",
        )
        .execute()
        .data[0]
    )
    assert again["id"] == first["id"] and again["step"] == "x"
    ignored = (
        service.table("deployments")
        .upsert(
            {"request_id": "click-1", "project_id": project, "owner_id": user, "step": "y"},
            on_conflict="owner_id,request_id",
            ignore_duplicates=True,
        )
        .execute()
    )
    assert ignored.data == []

    steps = [{"step": "github", "state": "done", "started_at": None, "finished_at": None}]
    updated = (
        service.table("deployments")
        .update({"status": "running", "steps": steps, "version": 5, "log_tail": ["a", "b"]})
        .eq("id", first["id"])
        .lt("version", 5)
        .execute()
    )
    assert updated.data[0]["steps"] == steps and updated.data[0]["log_tail"] == ["a", "b"]
    stale = (
        service.table("deployments")
        .update({"status": "queued", "version": 4})
        .eq("id", first["id"])
        .lt("version", 4)
        .execute()
    )
    assert stale.data == []  # an older version never overwrites a newer one
    single = service.table("deployments").select("status").eq("id", first["id"]).single()
    assert single.execute().data == {"status": "running"}

    with pytest.raises(APIError) as check:
        service.table("deployments").update({"status": "exploded"}).eq("id", first["id"]).execute()
    assert check.value.code == "23514"
    with pytest.raises(APIError) as duplicate:
        service.table("deployments").insert(
            {"request_id": "click-1", "project_id": project, "owner_id": user}
        ).execute()
    assert duplicate.value.code == "23505"
    assert "already exists" in (duplicate.value.details or "")
    with pytest.raises(APIError) as missing:
        service.table("no_such_table").select("*").execute()
    assert missing.value.code == "PGRST205"
    with pytest.raises(APIError) as none:
        service.table("deployments").select("*").eq("id", str(uuid.uuid4())).single().execute()
    assert none.value.code == "PGRST116"


def test_a_forged_or_expired_token_is_refused(dashboard: Dashboard) -> None:
    user = str(uuid.uuid4())
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signing = {**dashboard.signing_key, "private_pem": other.decode()}  # the right kid, not the key
    forged = Dashboard(**{**dashboard.__dict__, "signing_key": signing})
    with pytest.raises(APIError) as bad:
        dashboard.client(user_token=forged.user_token(user)).table("deployments").select(
            "*"
        ).execute()
    assert bad.value.code == "PGRST301"
    expired = dashboard.user_token(user, expires_in=-60)
    with pytest.raises(APIError) as old:
        dashboard.client(user_token=expired).table("deployments").select("*").execute()
    assert old.value.code == "PGRST303" and old.value.message == "JWT expired"


def _root(client: Client) -> Any:
    """PostgREST's root document, fetched on supabase-py's own session and headers."""
    rest = client.postgrest
    return rest.session.get(str(rest.base_url) + "/", headers=rest.headers)


def test_the_rest_root_is_the_secret_keys_and_lists_what_it_was_granted(
    dashboard: Dashboard,
) -> None:
    hidden = f"hidden_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dashboard.db_url) as conn:
        conn.execute(f"create table {hidden} (id int primary key, note text not null)")
    service = _root(dashboard.client(dashboard.secret_key)).json()
    # the kit grants its tables to the secret key's role; a new table is granted to no one
    assert {"/", "/deployments", "/projects"} <= set(service["paths"])
    assert f"/{hidden}" not in service["paths"]
    with psycopg.connect(dashboard.db_url) as conn:
        conn.execute(f"grant select on {hidden} to service_role")
    service = _root(dashboard.client(dashboard.secret_key)).json()
    assert service["definitions"][hidden]["required"] == ["id", "note"]
    assert set(service["definitions"][hidden]["properties"]) == {"id", "note"}
    # The publishable key never reads the root, with or without a signed-in user's token.
    user = dashboard.client(user_token=dashboard.user_token(str(uuid.uuid4())))
    for client in (user, dashboard.client()):
        refused = _root(client)
        assert refused.status_code == 403
        assert refused.json()["message"] == "Access to schema is forbidden"


def test_the_kits_grants_are_what_a_new_project_needs_and_no_more(dashboard: Dashboard) -> None:
    """On today's Supabase nothing is granted by default: each role reaches exactly what the
    migration grants it (the publishable key alone: nothing)."""
    with pytest.raises(APIError) as anon:
        dashboard.client().table("deployments").select("id").execute()
    assert anon.value.code == "42501"
    with psycopg.connect(dashboard.db_url) as conn:
        granted = {
            (role, privilege)
            for role, privilege in conn.execute(
                "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
                "WHERE table_schema = 'public' AND table_name = 'deployments' "
                "AND grantee IN ('anon', 'authenticated', 'service_role')"
            ).fetchall()
        }
    assert granted == {
        ("authenticated", "SELECT"),
        ("authenticated", "INSERT"),
        ("service_role", "SELECT"),
        ("service_role", "INSERT"),
        ("service_role", "UPDATE"),
    }
