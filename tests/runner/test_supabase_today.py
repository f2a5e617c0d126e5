"""`forge-runner deploy` against Supabase as it is today (the sandbox's default), end to end:
the real runner process under the loopback audit, the real `supabase db push`, supabase-py in
the health check and supabase-js running the example app's own source.

A new project grants nothing to the API roles and has its legacy JWT keys disabled: the app
gets the publishable and secret keys (under the new and the older variable names), its tables
are checked before production moves, the auth service's URLs point at the live app, a paused
project is restored once, and a scoped token's refusal names the permission it lacks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.checkpoints import SEALED_DB_PASSWORD, resume_text
from runner.events import EventType, parse_event
from runner.sealing import new_keypair, seal
from sandbox.supabase import guard
from tests.support import runner as runner_support
from tests.support.clis import REPO, CliRunner
from tests.support.runner import CAPTURED, RunnerProcess, RunnerResult, kill_runner
from tests.support.sandbox import SandboxProcess, owned_by
from tests.support.supabase_api import Management, keys_of

EXAMPLES = REPO / "examples"
NEW_NAMES = ("NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY")
OLD_NAMES = ("NEXT_PUBLIC_SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY")

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def app(tmp_path: Path, example: str = "hello-app", label: str = "app") -> Path:
    target = tmp_path / label
    shutil.copytree(EXAMPLES / example, target, symlinks=True)
    return target


def deploy(runner: RunnerProcess, build: Path, name: str, **env: str) -> RunnerResult:
    return runner.run(["deploy", "--build-dir", str(build), "--name", name], env or None)


def live(result: RunnerResult) -> dict[str, Any]:
    assert result.returncode == 0, result.explain()
    assert result.eof.payload == {"outcome": "live", "exit_code": 0}
    return result.result


def project_of(sandbox: SandboxProcess, name: str) -> dict[str, Any]:
    [project] = [
        p for p in sandbox.resources()["supabase"]["projects"] if p["name"] == f"forge-{name}"
    ]
    return project


def env_of(sandbox: SandboxProcess, name: str) -> dict[str, str]:
    """Each Supabase variable of the app's Vercel project: its value, or a sensitive one's
    SHA-256 (the sandbox never shows those)."""
    return {
        e["key"]: e.get("value") or e["value_sha256"]
        for e in sandbox.resources()["vercel"]["env"]
        if e["project"] == name and e["key"].startswith(("NEXT_PUBLIC_SUPABASE", "SUPABASE_"))
    }


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_keys_only(env: dict[str, str], keys: dict[str, Any]) -> None:
    """The app holds the publishable and secret keys under every name, never a legacy JWT."""
    assert env["NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY"] == keys["publishable"]
    assert env["NEXT_PUBLIC_SUPABASE_ANON_KEY"] == keys["publishable"]
    assert env["SUPABASE_SECRET_KEY"] == env["SUPABASE_SERVICE_ROLE_KEY"] == sha(keys["secret"])
    legacy = {keys["anon"], keys["service_role"], sha(keys["anon"]), sha(keys["service_role"])}
    assert not legacy & set(env.values())


def exposure_event(result: RunnerResult) -> dict[str, Any]:
    [found] = [e.payload for e in result.of(EventType.STEP_PROGRESS) if "exposure" in e.payload]
    report: dict[str, Any] = found["exposure"]
    return report


def sealed_resume(tmp_path: Path, public: str, password: str) -> Path:
    """A `--resume` file holding the database password sealed to `public` (what the dispatcher
    hands a redeploy of a project a run did not create itself)."""
    import base64

    path = tmp_path / "sealed.jsonl"
    sealed = seal(base64.b64decode(public), password)
    path.write_text(resume_text("adopt-1", {SEALED_DB_PASSWORD: sealed}))
    return path


# -- a new-default project ----------------------------------------------------------------------
def test_a_deploy_into_a_new_project_ends_live_reading_each_queried_table(
    sandbox: SandboxProcess,
    forge_runner: RunnerProcess,
    cli: CliRunner,
    unique: str,
    tmp_path: Path,
) -> None:
    name = f"today-{unique}"
    build = app(tmp_path)
    (build / "supabase" / "config.toml").write_text(
        '[auth]\nsite_url = "http://127.0.0.1:3000"\n'
        'additional_redirect_urls = ["https://127.0.0.1:3000/auth/callback", "hello://signed-in"]\n'
    )
    payload = live(deploy(forge_runner, build, name))
    project = project_of(sandbox, name)
    assert project["defaults"] == "2026" and project["keys"]["legacy_enabled"] is False
    keys = project["keys"]
    new_keys_only(env_of(sandbox, name), keys)

    rest = next(e for e in payload["health"]["evidence"] if e["check"] == "supabase_rest")
    assert rest["ok"] and rest["tables"] == {"public.notes": "ok"}
    auth = next(e for e in payload["health"]["evidence"] if e["check"] == "auth_urls")
    assert auth["ok"] and auth["site_url"] == payload["urls"]["app"]
    assert project["auth"]["site_url"] == payload["urls"]["app"]
    assert project["auth"]["uri_allow_list"].split(",") == [
        payload["urls"]["app"],
        payload["urls"]["app"] + "/**",
        "https://127.0.0.1:3000/auth/callback",  # what the app's supabase/config.toml lists
        "hello://signed-in",
    ]
    report = payload["exposure"]
    assert (
        report["errors"] == []
        and report["warnings"] == []
        and report["app_tables"] == ["public.notes"]
    )
    [notes] = [t for t in report["tables"] if t["table"] == "public.notes"]
    assert (notes["rls"], notes["policies"], notes["grants"]["anon"]) == (True, 1, ["SELECT"])

    # The example's own source, run by node with supabase-js and the values the deploy set.
    url = payload["urls"]["database"]
    script = (
        "const { supabaseFromEnv, latestNotes } = await import(process.env.NOTES);"
        "console.log(JSON.stringify(await latestNotes(supabaseFromEnv())));"
    )
    result = cli.run(
        ["node", "--input-type=module", "-e", script],
        cwd=REPO,
        env={
            "NOTES": str(EXAMPLES / "hello-app" / "src" / "notes.mjs"),
            "NEXT_PUBLIC_SUPABASE_URL": url,
            "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY": env_of(sandbox, name)[NEW_NAMES[0]],
        },
    )
    notes_read = json.loads(result.stdout.strip().splitlines()[-1])
    assert [n["body"] for n in notes_read] == ["Deployed by forge-deploy."]


def test_a_project_whose_legacy_keys_were_disabled_ends_live_without_them(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    """A project made in 2025 (its tables granted automatically), whose owner then disabled
    the legacy pair: adopted, migrated, live, and the app gets no legacy key."""
    name = f"nolegacy-{unique}"
    api = Management(sandbox)
    password = f"Nolegacy-pass-{unique}-0123456789"
    ref = api.create(f"forge-{name}", db_pass=password)
    sandbox.admin("PUT", f"supabase/projects/{ref}/defaults", {"defaults": "2025"})
    assert api("GET", f"/v1/projects/{ref}/api-keys/legacy").json() == {"enabled": True}
    api("PUT", f"/v1/projects/{ref}/api-keys/legacy", params={"enabled": "false"})
    public, private = new_keypair()
    resume = sealed_resume(tmp_path, public, password)
    result = forge_runner.run(
        ["deploy", "--build-dir", str(app(tmp_path)), "--name", name, "--resume", str(resume)],
        {"FORGE_SEAL_PRIVATE_KEY": private},
    )
    payload = live(result)
    [keys_step] = [
        e.payload
        for e in result.of(EventType.STEP_FINISHED)
        if e.payload["step"] == "supabase.keys"
    ]
    assert keys_step["legacy_keys"] == "disabled"
    new_keys_only(env_of(sandbox, name), keys_of(sandbox, ref))
    assert project_of(sandbox, name)["ref"] == ref
    assert payload["health"]["ok"] is True


def test_a_redeploy_moves_a_legacy_key_deployment_to_the_new_keys(
    sandbox: SandboxProcess,
    forge_runner: RunnerProcess,
    runner_env: dict[str, str],
    unique: str,
    tmp_path: Path,
) -> None:
    """As an older forge-deploy left it: the legacy JWTs in the two old variables, no new one."""
    name = f"moved-{unique}"
    build = app(tmp_path)
    live(deploy(forge_runner, build, name))
    ref = project_of(sandbox, name)["ref"]
    sandbox.admin("PUT", f"supabase/projects/{ref}/defaults", {"defaults": "2025"})
    keys = keys_of(sandbox, ref)
    ctx, _ = runner_support.make_context(runner_env)
    vercel = ctx.vercel
    project_id = vercel.json("GET", f"/v9/projects/{name}")["id"]
    for var in vercel.json("GET", f"/v10/projects/{project_id}/env")["envs"]:
        if var["key"] in NEW_NAMES:
            vercel.request("DELETE", f"/v9/projects/{project_id}/env/{var['id']}")
    vercel.request(
        "POST",
        f"/v10/projects/{project_id}/env",
        params={"upsert": "true"},
        json=[
            {"key": OLD_NAMES[0], "value": keys["anon"], "type": "encrypted",
             "target": ["production", "preview"]},
            {"key": OLD_NAMES[1], "value": keys["service_role"], "type": "sensitive",
             "target": ["production", "preview"]},
        ],
    )  # fmt: skip
    before = env_of(sandbox, name)
    assert before[OLD_NAMES[0]] == keys["anon"] and not set(NEW_NAMES) & set(before)

    again = deploy(forge_runner, build, name)
    live(again)
    new_keys_only(env_of(sandbox, name), keys)
    [env_step] = [
        e.payload for e in again.of(EventType.STEP_FINISHED) if e.payload["step"] == "vercel.env"
    ]
    assert set(NEW_NAMES + OLD_NAMES) <= set(env_step["keys"])


# -- the exposure check ---------------------------------------------------------------------------
def test_the_ungranted_app_stops_before_promote_and_the_old_production_keeps_serving(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    """The app's first version (its guestbook) is live; the next adds a to-do list whose table
    no migration grants: it stops before production moves, and the first version still serves."""
    name = f"ungranted-{unique}"
    ungranted = app(tmp_path, "ungranted-app", "ungranted")
    first_version = app(tmp_path, "ungranted-app", "v1")
    (first_version / "supabase" / "migrations" / "20260601000001_create_todos.sql").unlink()
    source = (first_version / "src" / "todos.mjs").read_text()
    todos_part = source[
        source.index("export async function todos()") : source.index("export async function sign(")
    ]
    (first_version / "src" / "todos.mjs").write_text(source.replace(todos_part, ""))
    (first_version / "public" / "index.html").write_text("<h1>Guestbook v1</h1>\n")
    public, private = new_keypair()
    deployed = deploy(forge_runner, first_version, name, FORGE_SEAL_PUBLIC_KEY=public)
    first = live(deployed)
    assert [f["table"] for f in exposure_event(deployed)["warnings"]] == ["public.guestbook"]
    ca = forge_runner.env["FORGE_CA_FILE"]
    assert "Guestbook v1" in requests.get(first["urls"]["app"], verify=ca, timeout=10).text

    # The new migration needs the database password: handed back sealed, as for any redeploy.
    resume = tmp_path / "sealed.jsonl"
    sealed = deployed.checkpoints()[SEALED_DB_PASSWORD]
    resume.write_text(resume_text("redeploy-2", {SEALED_DB_PASSWORD: sealed}))
    result = forge_runner.run(
        ["deploy", "--build-dir", str(ungranted), "--name", name, "--resume", str(resume)],
        {"FORGE_SEAL_PRIVATE_KEY": private},
    )
    assert result.returncode == 1, result.explain()
    assert result.result["outcome"] == "failed"
    error = result.result["error"]
    assert "public.todos" in error and "42501" in error
    assert (
        "grant select, insert on table public.todos to anon, authenticated, service_role;" in error
    )
    started = {e.payload["step"] for e in result.of(EventType.STEP_STARTED)}
    assert "health.exposure" in started and "vercel.promote" not in started
    report = exposure_event(result)
    assert [f["table"] for f in report["errors"]] == ["public.todos"]
    assert [(f["kind"], f["table"]) for f in report["warnings"]] == [("open", "public.guestbook")]
    assert (
        "readable and writable by anyone holding the publishable key"
        in report["warnings"][0]["message"]
    )
    assert "Data API exposure" in result.stderr and "public.todos" in result.stderr
    # Production did not move: the previous deployment still serves.
    page = requests.get(first["urls"]["app"], verify=ca, timeout=10)
    assert page.status_code == 200 and "Guestbook v1" in page.text

    planned = forge_runner.run(["plan", "--build-dir", str(tmp_path / "ungranted"), "--name", name])
    assert planned.returncode == 0, planned.explain()
    [entry] = [c for c in planned.result["changes"] if c["resource"] == "supabase.exposure"]
    assert entry["action"] == "fix" and "public.todos" in entry["detail"]
    assert "public.guestbook" in planned.stderr  # the human table, in plan's log too


def test_the_fail_policy_makes_an_open_table_fatal(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"policy-{unique}"
    build = app(tmp_path)
    (build / "supabase" / "migrations" / "20250103000000_guestbook.sql").write_text(
        "create table public.guestbook (id bigint generated always as identity primary key,"
        " message text not null);\ngrant select, insert on public.guestbook to anon;\n"
    )
    warned = deploy(forge_runner, build, name)
    live(warned)
    assert [f["table"] for f in exposure_event(warned)["warnings"]] == ["public.guestbook"]
    refused = deploy(forge_runner, build, name, FORGE_EXPOSURE_POLICY="fail")
    assert refused.returncode == 1, refused.explain()
    assert "FORGE_EXPOSURE_POLICY=fail" in refused.result["error"]
    assert "public.guestbook" in refused.result["error"]
    bad = deploy(forge_runner, build, name, FORGE_EXPOSURE_POLICY="strict")
    assert bad.returncode == 2 and "FORGE_EXPOSURE_POLICY" in bad.result["error"]


# -- paused projects ------------------------------------------------------------------------------
def test_a_paused_project_is_restored_once_even_when_the_runner_is_killed_mid_restore(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"paused-{unique}"
    build = app(tmp_path)
    live(deploy(forge_runner, build, name))
    ref = project_of(sandbox, name)["ref"]
    assert sandbox.admin("POST", f"supabase/projects/{ref}/pause").status_code == 200
    restore = f"^/v1/projects/{ref}/restore$"
    sandbox.set_faults(
        [{"service": "supabase", "method": "POST", "path": restore, "action": "hold"}]
    )
    args = ["deploy", "--build-dir", str(build), "--name", name]
    process, _ = forge_runner.start(args)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        event = parse_event(line)
        if event.type is EventType.STEP_PROGRESS and "restoring it" in event.payload["message"]:
            break
    for _ in range(500):  # the POST is held by the sandbox: the runner waits for its answer
        if sandbox.admin("GET", "faults").json()[0]["hits"] >= 1:
            break
        time.sleep(0.02)
    kill_runner(process)
    rest, stderr = process.communicate(timeout=60)
    CAPTURED.extend([*seen, rest, stderr])
    sandbox.set_faults([])  # the held restore is served now, with nobody waiting for its answer
    events_file = tmp_path / "attempt-1.jsonl"
    events_file.write_text("".join([*seen, rest]))

    resumed = forge_runner.run([*args, "--resume", str(events_file)])
    live(resumed)
    restores = [
        t
        for t in sandbox.traffic()
        if t["method"] == "POST" and t["path"] == f"/v1/projects/{ref}/restore"
    ]
    assert [t["status"] for t in restores] == [200]  # one restore, served after the kill
    assert "restoring it" not in resumed.stdout  # the resumed run found it RESTORING
    statuses = [e.payload.get("status") for e in resumed.of(EventType.STEP_PROGRESS)]
    assert "ACTIVE_HEALTHY" in statuses
    assert owned_by(sandbox, name)["supabase"] == 1


# -- scoped tokens --------------------------------------------------------------------------------
def scoped(sandbox: SandboxProcess, without: str) -> str:
    permissions = sorted(guard.PERMISSIONS - {without})
    token: str = sandbox.admin("POST", "supabase/tokens", {"permissions": permissions}).json()[
        "token"
    ]
    return token


def test_a_token_without_organization_projects_create_fails_at_once_and_the_retry_adopts(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"scoped-{unique}"
    build = app(tmp_path)
    token = scoped(sandbox, "organization_projects_create")
    start = len(sandbox.traffic())
    refused = deploy(forge_runner, build, name, SUPABASE_ACCESS_TOKEN=token)
    assert refused.returncode == 1, refused.explain()
    error = refused.result["error"]
    assert "organization_projects_create" in error
    assert "create the app's project (POST /v1/projects)" in error
    creates = [
        t
        for t in sandbox.traffic()[start:]
        if t["method"] == "POST" and t["path"] == "/v1/projects"
    ]
    assert [t["status"] for t in creates] == [403]  # at once: never retried
    assert token not in refused.stdout + refused.stderr
    made = owned_by(sandbox, name)
    assert made["supabase"] == 0

    live(deploy(forge_runner, build, name))  # the full token: what was made is adopted
    after = owned_by(sandbox, name)
    assert (after["repos"], after["supabase"], after["vercel"]) == (1, 1, 1)
    assert made["repos"] <= 1 and made["vercel"] <= 1


def test_a_token_without_api_gateway_keys_read_fails_naming_it(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"nokeys-{unique}"
    refused = deploy(
        forge_runner,
        app(tmp_path),
        name,
        SUPABASE_ACCESS_TOKEN=scoped(sandbox, "api_gateway_keys_read"),
    )
    assert refused.returncode == 1, refused.explain()
    error = refused.result["error"]
    assert "api_gateway_keys_read" in error and "read the project's API keys" in error
    failed = [e.payload["step"] for e in refused.of(EventType.STEP_FAILED)]
    assert "supabase.keys" in failed


def test_a_token_without_the_migration_history_falls_back_and_ends_live(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"nohist-{unique}"
    start = len(sandbox.traffic())
    result = deploy(
        forge_runner,
        app(tmp_path),
        name,
        SUPABASE_ACCESS_TOKEN=scoped(sandbox, "database_migrations_read"),
    )
    live(result)
    history = [t for t in sandbox.traffic()[start:] if t["path"].endswith("/database/migrations")]
    assert history and {t["status"] for t in history} == {403}
    assert project_of(sandbox, name)["migrations"][-1]["version"] == "20250102000000"
