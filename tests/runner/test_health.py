"""The health check against the sandbox: a served app and the Supabase Data API (each table the
app queries read with the publishable key, the schema root with the secret key) are healthy;
an app READY but missing an env var (500), a table answering 42501, a wrong key, or an
unreachable app are not, with evidence that carries no secret."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import workcopy
from runner.context import RunContext
from runner.http import new_session
from runner.steps import health, health_rest, vercel_env
from runner.steps import vercel as vercel_step
from sandbox.postgres import free_port
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

pytestmark = pytest.mark.postgres


@pytest.fixture
def ctx_stream(runner_env: dict[str, str]) -> tuple[RunContext, io.StringIO]:
    return runner_support.make_context(runner_env)


@pytest.fixture
def supabase_project(
    ctx_stream: tuple[RunContext, io.StringIO], unique: str
) -> Iterator[health_rest.DataApi]:
    """The Data API of an ACTIVE_HEALTHY Supabase project made for the test (no table yet)."""
    ctx, _ = ctx_stream
    created = ctx.supabase.json(
        "POST",
        "/v1/projects",
        idempotent=False,
        json={
            "name": f"health-{unique}",
            "organization_slug": ctx.settings.supabase.org_id,
            "region": ctx.settings.supabase.region,
            "db_pass": f"Health-pass-{unique}-0123456789",
        },
    )
    ref = str(created["ref"])

    def up() -> bool | None:
        status = ctx.supabase.json("GET", f"/v1/projects/{ref}")["status"]
        return True if status == "ACTIVE_HEALTHY" else None

    ctx.poll("test", "supabase project", up, 60)
    keys = ctx.supabase.json("GET", f"/v1/projects/{ref}/api-keys", params={"reveal": "true"})
    publishable = next(str(k["api_key"]) for k in keys if k["type"] == "publishable")
    secret = next(str(k["api_key"]) for k in keys if k["type"] == "secret")
    for key in (publishable, secret):
        ctx.masker.register(key)
    try:
        url = ctx.settings.supabase.project_url.replace("{ref}", ref)
        yield health_rest.DataApi(url, publishable, secret)
    finally:
        ctx.supabase.request("DELETE", f"/v1/projects/{ref}")


def build(tmp_path: Path, label: str, files: dict[str, str]) -> workcopy.WorkCopy:
    source = tmp_path / f"build-{label}"
    source.mkdir()
    for rel, text in files.items():
        (source / rel).write_text(text)
    return workcopy.make(source, tmp_path / f"copy-{label}", f"build {label}")


def deployed(
    ctx: RunContext, app: str, copy: workcopy.WorkCopy, force_new: bool = False
) -> tuple[vercel_step.VercelProject, str]:
    project = vercel_step.ensure_project(ctx, app)
    result = vercel_step.deploy(ctx, project, copy, force_new=force_new)
    ready = vercel_step.wait_ready(ctx, result.deployment.id)
    return project, f"https://{ready.url}"


def test_session_sends_no_token(run_context: RunContext) -> None:
    session = health.session(run_context)
    assert "Authorization" not in session.headers
    assert session.verify == str(run_context.settings.run.ca_file)
    assert "Authorization" in new_session("x" * 12, None).headers  # what was removed


def test_healthy_app_and_database(
    ctx_stream: tuple[RunContext, io.StringIO],
    supabase_project: health_rest.DataApi,
    unique: str,
    tmp_path: Path,
) -> None:
    ctx, stream = ctx_stream
    api = supabase_project
    copy = build(
        tmp_path, "ok", {"index.html": f"<h1>up {unique}</h1>\n", "ping.html": f"pong {unique}\n"}
    )
    project, _ = deployed(ctx, f"healthy-{unique}", copy)
    ready = vercel_step.wait_ready(ctx, str(ctx.checkpoints.get("vercel.deployment_id")))
    url = vercel_step.promote(ctx, project, ready)
    verdict = health.check(ctx, url, "/ping", api)
    assert verdict.ok, verdict.evidence
    app, rest = verdict.evidence
    assert (app["check"], app["status"], app["attempts"]) == ("app", 200, 1)
    assert app["url"] == f"{url}/ping" and f"pong {unique}" in app["body"]
    assert (rest["check"], rest["status"], rest["tables"]) == ("supabase_rest", 200, {})
    assert rest["url"] == f"{api.url}/rest/v1/"  # no table queried: the root (secret key) only
    for key in (api.publishable, api.secret):
        assert key not in repr(verdict.evidence) and key not in stream.getvalue()
    vercel_step.teardown_app(ctx, project.name)


def test_app_missing_an_env_var_is_unhealthy_until_set(
    ctx_stream: tuple[RunContext, io.StringIO],
    supabase_project: health_rest.DataApi,
    unique: str,
    tmp_path: Path,
) -> None:
    ctx, stream = ctx_stream
    api = supabase_project
    files = {
        "index.html": f"<h1>needs env {unique}</h1>\n",
        ".env.example": "NEXT_PUBLIC_SUPABASE_URL=\nNEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY=\n",
    }
    copy = build(tmp_path, "env", files)
    project, app_url = deployed(ctx, f"noenv-{unique}", copy)
    verdict = health.check(ctx, app_url, "/", api)
    assert not verdict.ok
    app, rest = verdict.evidence
    assert app["status"] == 500 and app["attempts"] == health.ATTEMPTS and not app["ok"]
    assert "Missing required environment variables" in app["body"]
    assert "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY" in app["body"]
    assert rest["ok"] and rest["status"] == 200
    # what the pipeline does next: set the env vars, build again, healthy
    vercel_env.set_env(
        ctx, project.id, vercel_env.supabase_env(api.url, api.publishable, api.secret)
    )
    _, rebuilt_url = deployed(ctx, project.name, copy, force_new=True)
    assert health.check(ctx, rebuilt_url, "/", api).ok
    assert api.publishable not in stream.getvalue() and api.secret not in stream.getvalue()
    vercel_step.teardown_app(ctx, project.name)


def test_wrong_key_and_unreachable_app_are_evidence_without_secrets(
    ctx_stream: tuple[RunContext, io.StringIO],
    supabase_project: health_rest.DataApi,
) -> None:
    ctx, stream = ctx_stream
    wrong = "sb_secret_wrong-key-0123456789abcdef"
    api = health_rest.DataApi(
        supabase_project.url + "/rest/v1", supabase_project.publishable, wrong
    )
    dead = f"https://127.0.0.1:{free_port('127.0.0.1')}"
    verdict = health.check(ctx, dead, "/", api)
    assert not verdict.ok
    app, rest = verdict.evidence
    assert app["status"] is None and app["attempts"] == health.ATTEMPTS
    assert "ConnectionError" in app["error"]
    assert rest["status"] == 401 and rest["attempts"] == 1  # not transient: no retry
    assert rest["url"] == f"{supabase_project.url}/rest/v1/"
    assert "Invalid API key" in rest["error"]
    assert wrong not in repr(verdict.evidence) and wrong not in stream.getvalue()


def test_the_rest_check_reads_each_queried_table_with_the_publishable_key(
    ctx_stream: tuple[RunContext, io.StringIO],
    supabase_project: health_rest.DataApi,
    sandbox: SandboxProcess,
    unique: str,
) -> None:
    """RLS on, no policy, granted: the publishable key reads no row, which is healthy. A 503 on
    the root is transient (one more attempt); a revoked grant is 42501: named, not healthy."""
    ctx, stream = ctx_stream
    ref = supabase_project.url.rstrip("/").rsplit("/", 1)[-1]
    table = f"notes_{unique}"
    ctx.supabase.request(
        "POST",
        f"/v1/projects/{ref}/database/query",
        json={"query": f"create table {table} (id int primary key); "
              f"insert into {table} values (1); alter table {table} enable row level security;"
              f"grant select on {table} to anon"},
    )  # fmt: skip
    api = health_rest.DataApi(
        supabase_project.url,
        supabase_project.publishable,
        supabase_project.secret,
        tables=(f"public.{table}",),
    )
    sandbox.set_faults([{"service": "apps", "method": "GET", "path": f"^/sb/{ref}/rest/v1/?$",
                         "action": "status", "status": 503, "times": 1}])  # fmt: skip
    rest = health_rest.probe(ctx, api, 3, 200, lambda attempt: None)
    assert (rest["ok"], rest["status"], rest["attempts"]) == (True, 200, 2)
    assert rest["tables"] == {f"public.{table}": "ok"} and rest["served"] == 0
    reads = [e for e in sandbox.traffic() if e["path"] == f"/sb/{ref}/rest/v1/{table}"]
    assert reads and reads[-1]["status"] == 200 and reads[-1]["response_body"] == []
    assert "supabase-py" in reads[-1]["request_headers"].get("x-client-info", "")
    ctx.supabase.request(
        "POST",
        f"/v1/projects/{ref}/database/query",
        json={"query": f"revoke all on {table} from anon"},
    )
    rest = health_rest.probe(ctx, api, 3, 200, lambda attempt: None)
    assert not rest["ok"] and rest["attempts"] == 1
    assert rest["tables"] == {f"public.{table}": "42501"}
    assert f"public.{table}: 42501 permission denied" in rest["error"]
    for key in (api.publishable, api.secret):
        assert key not in stream.getvalue()
