"""The pure parts of deploying onto today's Supabase, without I/O: the query-builder calls read
from an app's sources, the exposure analysis and its table, the auth URLs kept and added, the
keys picked, a scoped token's 403 as an error naming what it lacks, the exposure policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from runner import app_tables, exposure, settings
from runner.errors import BadInput, FatalError, MissingPermissions
from runner.http import classify
from runner.providers.supabase import ApiKey, AuthUrls
from runner.providers.supabase_data import api_key, auth_urls
from runner.steps import supabase_auth
from runner.steps.supabase_keys import _usable
from tests.runner.test_settings import GOOD
from tests.support import secret_shapes

REPO = Path(__file__).resolve().parents[2]


# -- the tables an app queries ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "found"),
    [
        (
            'const { data } = await supabase.from("notes").select("*")',
            [("public", "notes", "select")],
        ),
        ("supabase\n  .from('todos')\n  .insert({ title })", [("public", "todos", "insert")]),
        ("client.from(`items`).upsert(row)", [("public", "items", "upsert")]),
        ("db.schema('private').from('audit').delete()", [("private", "audit", "delete")]),
        ("supabaseAdmin.from('logs')", [("public", "logs", None)]),
        ("(await createClient()).from('x').update({})", [("public", "x", "update")]),
        ("supabase.storage.from('avatars').update(path, file)", []),
        ("Buffer.from('abc'); Array.from('xyz'); Uint8Array.from('1')", []),
        ("someList.from('notes')", []),  # neither supabase nor a query after it
        ("supabase.from(tableName).select()", []),  # a name in a variable is not seen
    ],
)
def test_query_builder_calls_are_read_from_source(
    source: str, found: list[tuple[str, str, str | None]]
) -> None:
    assert app_tables.calls(source) == found


def test_the_examples_tables_and_what_each_is_used_for() -> None:
    def scan(app: str) -> dict[str, set[str]]:
        root = REPO / "examples" / app
        files = [(str(p.relative_to(root)), p.read_bytes()) for p in root.rglob("*") if p.is_file()]
        return {t.qualified: set(t.privileges) for t in app_tables.scan(files)}

    assert scan("hello-app") == {"public.notes": {"SELECT"}}
    assert scan("ungranted-app") == {
        "public.todos": {"SELECT", "INSERT"},
        "public.guestbook": {"SELECT", "INSERT"},
    }
    assert app_tables.scan([("README.md", b"supabase.from('docs')")]) == []


# -- the analysis -------------------------------------------------------------------------------
def catalog(
    name: str, rls: bool, anon: list[str], authenticated: list[str], **extra: Any
) -> list[dict[str, Any]]:
    base = {"schema": "public", "name": name, "kind": "table", "rls": rls, "invoker": False,
            "policies": 1 if rls else 0, "usage": True, **extra}  # fmt: skip
    return [
        {**base, "role": role, **{p: p in privileges for p in exposure.ORDER}}
        for role, privileges in (("anon", anon), ("authenticated", authenticated))
    ]


def used(name: str, *privileges: str) -> app_tables.AppTable:
    return app_tables.AppTable("public", name, frozenset(privileges), ("src/app.ts",))


def test_an_ungranted_queried_table_is_an_error_with_the_grant_to_add() -> None:
    rows = catalog("todos", True, [], []) + catalog("notes", True, ["SELECT"], ["SELECT"])
    report = exposure.analyse(
        ("public",),
        exposure.relations(rows),
        [used("todos", "SELECT", "INSERT"), used("notes", "SELECT")],
    )
    [error] = report.errors
    assert (error.kind, error.table) == ("unreachable", "public.todos")
    assert (
        error.fix
        == "grant select, insert on table public.todos to anon, authenticated, service_role;"
    )
    assert "may select or insert it" in error.message and "42501" in error.message
    assert report.warnings == []
    # Signed-in users alone may read: reachable, no error (RLS decides the rows).
    only_users = exposure.relations(catalog("todos", True, [], ["SELECT", "INSERT"]))
    assert (
        exposure.analyse(("public",), only_users, [used("todos", "SELECT", "INSERT")]).errors == []
    )
    # Granted but RLS off: the fix enables RLS too.
    off = exposure.relations(catalog("todos", False, ["SELECT"], []))
    [missing_insert] = exposure.analyse(
        ("public",), off, [used("todos", "SELECT", "INSERT")]
    ).errors
    assert missing_insert.fix is not None and "enable row level security" in missing_insert.fix


def test_open_tables_and_views_are_warnings_and_missing_tables_are_named() -> None:
    rows = (
        catalog("guestbook", False, ["SELECT", "INSERT"], [])
        + catalog("feed", False, ["SELECT"], [], kind="view")
        + catalog("safe_feed", False, ["SELECT"], [], kind="view", invoker=True)
        + catalog("internal", False, [], [])
        + catalog("hidden", True, ["SELECT"], ["SELECT"], usage=False)
    )
    rels = exposure.relations(rows)
    assert {r.name: r.grants["anon"] for r in rels}["hidden"] == ()  # no schema usage
    report = exposure.analyse(("public",), rels, [used("ghost", "SELECT")])
    kinds = sorted((f.kind, f.table) for f in report.warnings)
    assert kinds == [
        ("missing", "public.ghost"),
        ("open", "public.feed"),
        ("open", "public.guestbook"),
    ]
    guestbook = next(f for f in report.warnings if f.table == "public.guestbook")
    assert "readable and writable by anyone holding the publishable key" in guestbook.message
    feed = next(f for f in report.warnings if f.table == "public.feed")
    assert feed.fix == "alter view public.feed set (security_invoker = true);"
    table = exposure.render(report)
    assert table.splitlines()[1].startswith("table ")
    [row] = [line.split() for line in table.splitlines() if line.startswith("public.guestbook")]
    assert row == ["public.guestbook", "SI--", "----", "off", "0", "open"]
    assert "public.ghost" in table and "WARNING" in table
    document = report.to_json()
    assert document["app_tables"] == ["public.ghost"] and len(document["tables"]) == 5


# -- the auth URLs -----------------------------------------------------------------------------
def test_the_auth_urls_point_at_the_live_app_and_keep_every_entry() -> None:
    before = AuthUrls("http://localhost:3000", ("https://kept.example/**",))
    after = supabase_auth.wanted(before, "https://shop.example/", ["myapp://callback"])
    assert after == AuthUrls(
        "https://shop.example",
        (
            "https://kept.example/**",
            "https://shop.example",
            "https://shop.example/**",
            "myapp://callback",
        ),
    )
    assert supabase_auth.wanted(after, "https://shop.example", ["myapp://callback"]) == after
    assert auth_urls({"site_url": "x", "uri_allow_list": "a, b,,"}, "w").allow_list == ("a", "b")
    with pytest.raises(FatalError):
        auth_urls({"site_url": 3}, "GET config/auth")


def test_the_apps_config_toml_redirects_are_read_and_bad_toml_is_bad_input(tmp_path: Path) -> None:
    assert supabase_auth.app_redirects(tmp_path) == []
    config = tmp_path / "supabase" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        '[auth]\nsite_url = "http://127.0.0.1:3000"\n'
        'additional_redirect_urls = ["https://a.example/cb", "myapp://x"]\n'
    )
    assert supabase_auth.app_redirects(tmp_path) == ["https://a.example/cb", "myapp://x"]
    config.write_text("[auth\n")
    with pytest.raises(BadInput, match=r"supabase/config\.toml is not valid TOML"):
        supabase_auth.app_redirects(tmp_path)
    config.write_text("[auth]\nadditional_redirect_urls = 3\n")
    with pytest.raises(BadInput, match="additional_redirect_urls"):
        supabase_auth.app_redirects(tmp_path)


# -- keys, tokens, settings ---------------------------------------------------------------------
def test_keys_listed_masked_or_legacy_are_never_picked() -> None:
    items = [
        {"name": "anon", "type": "legacy", "api_key": "eyJ.anon.jwt", "id": "anon"},
        {"name": "default", "type": "secret", "api_key": "sb_secret_abcd••••", "id": "1"},
        {"name": "default", "type": "publishable", "api_key": "sb_publishable_x", "id": "2"},
        {"name": "forge_deploy", "type": "secret", "api_key": "sb_secret_ours", "id": "3"},
        {"name": "ci_key", "type": "secret", "api_key": "sb_secret_theirs", "id": "4"},
        {"type": "secret", "api_key": "nameless"},
    ]
    keys = [k for k in (api_key(i) for i in items) if k is not None]
    assert [k.name for k in keys] == ["anon", "default", "default", "forge_deploy", "ci_key"]
    assert keys[1].value is None  # masked: not revealed
    assert _usable(keys, "secret") == ApiKey("3", "forge_deploy", "secret", "sb_secret_ours")
    assert _usable(keys, "publishable") == ApiKey("2", "default", "publishable", "sb_publishable_x")
    assert "sb_secret_ours" not in repr(keys)
    assert _usable(keys[:2], "secret") is None  # only a masked one: a key must be made


def _answer(
    status: int, body: bytes, method: str = "POST", url: str = "https://x/v1/projects"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["content-type"] = "application/json"
    response.request = requests.Request(method, url + "?reveal=true").prepare()
    return response


def test_a_scoped_tokens_403_is_an_error_naming_each_missing_permission() -> None:
    refused = _answer(
        403, b'{"message": "nope", "missing_permissions": ["organization_projects_create"]}'
    )
    error = classify("supabase", refused, 0.0, idempotent=False)
    assert isinstance(error, MissingPermissions) and isinstance(error, FatalError)
    assert error.permissions == ["organization_projects_create"]
    assert error.operation == "POST /v1/projects"  # never the query
    named = error.needed_to("create the app's project")
    assert "lacks the permission organization_projects_create" in str(named)
    assert "create the app's project (POST /v1/projects)" in str(named)
    plain = classify("supabase", _answer(403, b'{"message": "Forbidden"}'), 0.0)
    assert type(plain) is FatalError and plain.message == "Forbidden"


def test_the_exposure_policy_is_warn_or_fail_and_named_when_wrong() -> None:
    assert settings.load(GOOD).run.exposure_policy == "warn"
    assert settings.load({**GOOD, "FORGE_EXPOSURE_POLICY": "fail"}).run.exposure_policy == "fail"
    with pytest.raises(
        BadInput, match=r"^FORGE_EXPOSURE_POLICY is malformed: expected one of warn \| fail"
    ):
        settings.load({**GOOD, "FORGE_EXPOSURE_POLICY": "strict"})


def test_the_secret_scan_finds_the_new_key_shapes_without_knowing_them() -> None:
    import jwt

    secret = "sb_secret_" + "A1b2C3d4E5f6G7h8I9j0K1_abcdef12"
    service = jwt.encode({"role": "service_role", "iss": "supabase"}, "s" * 40, algorithm="HS256")
    anon = jwt.encode({"role": "anon", "iss": "supabase"}, "s" * 40, algorithm="HS256")
    text = f"key={secret} masked=sb_secret_abcd•••• token=sbp_{'0a' * 20} {service} {anon}"
    hits = secret_shapes.found(text)
    assert len(hits) == 3 and not any(secret in h or service in h for h in hits)
    assert secret_shapes.found("sb_publishable_0123456789abcdefghijkl *** sb_secret_abcd••••") == []
