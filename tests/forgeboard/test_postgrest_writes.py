"""The sandbox's PostgREST as supabase-py writes through it, each answer shaped as PostgREST
12/13 sends it (its `Response.hs` and `RangeQuery.hs`): `Prefer: missing=default` fills column
defaults, `Content-Range` on writes carries `count=exact`, a partial read with a count is 206
(past the end 416), and unknown tables and columns are PGRST205 and PGRST204."""

from __future__ import annotations

import ssl
import uuid

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from postgrest.types import CountMethod

from tests.forgeboard.conftest import Dashboard
from tests.support.clis import REPO, CliRunner

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def _rows(owner: str, project: str, n: int) -> list[dict[str, str]]:
    return [
        {"request_id": f"r{i}-{uuid.uuid4().hex[:6]}", "project_id": project, "owner_id": owner}
        for i in range(n)
    ]


def test_missing_default_fills_the_column_defaults(dashboard: Dashboard) -> None:
    service = dashboard.client(dashboard.secret_key)
    owner, project = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:8]}"
    rows = _rows(owner, project, 2)
    rows[1]["status"] = "running"  # `columns` names status; the first object lacks it
    inserted = service.table("deployments").insert(rows, default_to_null=False).execute()
    by_request = {r["request_id"]: r for r in inserted.data}
    first, second = by_request[rows[0]["request_id"]], by_request[rows[1]["request_id"]]
    assert first["status"] == "queued" and second["status"] == "running"
    assert first["steps"] == [] and first["version"] == 0 and first["id"]
    # Without the preference a column an object lacks is NULL, as PostgREST does: here the
    # NOT NULL status refuses it (23502), and nothing is written.
    again = _rows(owner, project, 2)
    again[1]["status"] = "running"
    with pytest.raises(APIError) as null:
        service.table("deployments").insert(again).execute()
    assert null.value.code == "23502"
    left = service.table("deployments").select("id").eq("request_id", again[1]["request_id"])
    assert left.execute().data == []


def test_writes_carry_content_range_and_their_count(dashboard: Dashboard) -> None:
    service = dashboard.client(dashboard.secret_key)
    owner, project = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:8]}"
    inserted = (
        service.table("deployments")
        .insert(_rows(owner, project, 3), count=CountMethod.exact)
        .execute()
    )
    assert inserted.count == 3 and len(inserted.data) == 3
    updated = (
        service.table("deployments")
        .update({"step": "github"}, count=CountMethod.exact)
        .eq("project_id", project)
        .execute()
    )
    assert updated.count == 3
    nothing = (
        service.table("deployments")
        .update({"step": "x"}, count=CountMethod.exact)
        .eq("project_id", "no-such-project")
        .execute()
    )
    assert nothing.count == 0 and nothing.data == []

    verify = ssl.create_default_context(cafile=dashboard.ca_file)
    headers = {
        "apikey": dashboard.secret_key,
        "Prefer": "count=exact",
        "Content-Type": "application/json",
    }
    base = f"{dashboard.url}/rest/v1/deployments"
    with httpx.Client(verify=verify, headers=headers) as http:
        post = http.post(base, json=_rows(owner, project, 2))
        assert (post.status_code, post.headers["content-range"]) == (201, "*/2")
        patch = http.patch(f"{base}?project_id=eq.{project}", json={"step": "supabase"})
        assert (patch.status_code, patch.headers["content-range"]) == (204, "0-4/5")
        plain = http.patch(
            f"{base}?project_id=eq.{project}", json={"step": "x"}, headers={"Prefer": ""}
        )
        assert plain.headers["content-range"] == "0-4/*"
        # A read with a count that returns part of the rows is 206; the whole is 200.
        part = http.get(f"{base}?project_id=eq.{project}&select=id&limit=2&offset=1")
        assert (part.status_code, part.headers["content-range"]) == (206, "1-2/5")
        whole = http.get(f"{base}?project_id=eq.{project}&select=id")
        assert (whole.status_code, whole.headers["content-range"]) == (200, "0-4/5")
        past = http.get(f"{base}?project_id=eq.{project}&select=id&offset=9")
        assert past.status_code == 416 and past.json()["code"] == "PGRST103"
    counted = (
        service.table("deployments")
        .select("id", count=CountMethod.exact)
        .eq("project_id", project)
        .limit(2)
        .execute()
    )
    assert counted.count == 5 and len(counted.data) == 2  # supabase-py takes the 206


def test_unknown_tables_and_columns_are_named(dashboard: Dashboard) -> None:
    service = dashboard.client(dashboard.secret_key)
    with pytest.raises(APIError) as table:
        service.table("no_such_table").select("*").execute()
    assert table.value.code == "PGRST205"
    assert (
        table.value.message == "Could not find the table 'public.no_such_table' in the schema cache"
    )
    with pytest.raises(APIError) as column:
        service.table("deployments").update({"no_such_column": 1}).eq(
            "id", str(uuid.uuid4())
        ).execute()
    assert column.value.code == "PGRST204"
    assert column.value.message == (
        "Could not find the 'no_such_column' column of 'deployments' in the schema cache"
    )


def test_or_filters_as_supabase_py_sends_them(dashboard: Dashboard) -> None:
    service = dashboard.client(dashboard.secret_key)
    owner, project = str(uuid.uuid4()), f"p-{uuid.uuid4().hex[:8]}"
    rows = _rows(owner, project, 3)
    for row, status in zip(rows, ("queued", "running", "live"), strict=True):
        row["status"] = status
    service.table("deployments").insert(rows).execute()

    def statuses(expression: str) -> list[str]:
        found = (
            service.table("deployments")
            .select("status")
            .eq("project_id", project)
            .or_(expression)
            .order("status")
            .execute()
        )
        return [r["status"] for r in found.data]

    assert statuses("status.eq.live,status.eq.running") == ["live", "running"]
    assert statuses("status.eq.queued,and(status.eq.live,version.gte.0)") == ["live", "queued"]
    assert statuses("status.in.(queued,live),step.not.is.null") == ["live", "queued"]
    with pytest.raises(APIError) as broken:
        service.table("deployments").select("id").or_("status.eq.live,(").execute()
    assert broken.value.code == "PGRST100"


def test_one_level_of_embedding(dashboard: Dashboard) -> None:
    tag = uuid.uuid4().hex[:8]
    parent, child = f"embed_parent_{tag}", f"embed_child_{tag}"
    with psycopg.connect(dashboard.db_url) as conn:
        conn.execute(f"CREATE TABLE public.{parent} (id text PRIMARY KEY, name text NOT NULL)")
        conn.execute(
            f"CREATE TABLE public.{child} (id serial PRIMARY KEY, "
            f"parent_id text REFERENCES public.{parent} (id), note text)"
        )
        conn.execute(f"CREATE TABLE public.lonely_{tag} (id int PRIMARY KEY)")
        for table in (parent, child, f"lonely_{tag}"):
            conn.execute(f"GRANT SELECT ON public.{table} TO service_role")
        conn.execute(f"INSERT INTO public.{parent} VALUES ('a', 'Alpha'), ('b', 'Beta')")
        conn.execute(
            f"INSERT INTO public.{child} (parent_id, note) VALUES ('a', 'one'), ('a', 'two'), "
            "(NULL, 'orphan')"
        )
    service = dashboard.client(dashboard.secret_key)
    many_to_one = (
        service.table(child).select(f"note,parent:{parent}(name)").order("id").execute().data
    )
    assert many_to_one == [
        {"note": "one", "parent": {"name": "Alpha"}},
        {"note": "two", "parent": {"name": "Alpha"}},
        {"note": "orphan", "parent": None},
    ]
    one_to_many = service.table(parent).select(f"*,{child}(note)").order("id").execute().data
    assert one_to_many == [
        {"id": "a", "name": "Alpha", child: [{"note": "one"}, {"note": "two"}]},
        {"id": "b", "name": "Beta", child: []},
    ]
    with pytest.raises(APIError) as unrelated:
        service.table(parent).select(f"*,lonely_{tag}(*)").execute()
    assert unrelated.value.code == "PGRST200"


def test_supabase_js_sequence(cli: CliRunner, dashboard: Dashboard) -> None:
    done = cli.run(
        [
            "node",
            str(REPO / "tests" / "forgeboard" / "node" / "postgrest.mjs"),
            dashboard.url,
            dashboard.secret_key,
            f"p-{uuid.uuid4().hex[:8]}",
            str(uuid.uuid4()),
        ],
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
