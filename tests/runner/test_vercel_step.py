"""The Vercel step against the sandbox: project + marker, env vars, staged deploy, promote,
uploads of only what Vercel lacks, faults on every call, a failed build."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from runner import workcopy
from runner.context import RunContext
from runner.errors import FatalError, NotOurs
from runner.events import EventType
from runner.providers.vercel import EnvItem, VercelClient
from runner.steps import vercel as vercel_step
from runner.steps import vercel_env
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

INDEX = "<!doctype html><html><body><h1>hello {tag}</h1></body></html>\n"


def build(tmp_path: Path, label: str, files: dict[str, str]) -> workcopy.WorkCopy:
    source = tmp_path / f"build-{label}"
    for rel, text in files.items():
        target = source / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return workcopy.make(source, tmp_path / f"copy-{label}", f"build {label}")


def site(tag: str) -> dict[str, str]:
    return {
        "index.html": INDEX.format(tag=tag),
        "about.html": f"<p>about {tag}</p>\n",  # every file unique: the file store is shared
        "style.css": f"/* {tag} */ body {{ color: #123; }}\n",
    }


def vercel_resources(sandbox: SandboxProcess, name: str) -> dict[str, list[Any]]:
    doc = sandbox.resources()["vercel"]
    projects = [p for p in doc["projects"] if p["name"] == name]
    ids = {p["id"] for p in projects}
    return {
        "projects": projects,
        "deployments": [d for d in doc["deployments"] if d["projectId"] in ids],
        "env": [e for e in doc["env"] if e["project"] == name],
    }


def calls(sandbox: SandboxProcess, method: str, pattern: str) -> int:
    rx = re.compile(pattern)
    return sum(
        1
        for t in sandbox.traffic()
        if t.get("service") == "vercel" and t["method"] == method and rx.search(t["path"])
    )


def vercel_writes(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return [t for t in sandbox.traffic() if t.get("service") == "vercel" and t["method"] != "GET"]


def fetch(sandbox: SandboxProcess, url: str) -> requests.Response:
    return requests.get(url, verify=sandbox.ca_file, timeout=10)


def context(runner_env: dict[str, str], **extra: str) -> tuple[RunContext, io.StringIO]:
    return runner_support.make_context({**runner_env, **extra})


def checkpoints(stream: io.StringIO) -> dict[str, Any]:
    return {
        str(e.payload["key"]): e.payload["value"]
        for e in runner_support.events_of(stream.getvalue())
        if e.type is EventType.CHECKPOINT
    }


# -- project ---------------------------------------------------------------------------------
def test_ensure_project_twice_makes_one_project(
    sandbox: SandboxProcess, runner_env: dict[str, str], unique: str
) -> None:
    ctx, stream = context(runner_env)
    app = f"app-{unique}"
    first = vercel_step.ensure_project(ctx, app)
    second = vercel_step.ensure_project(ctx, app)
    assert first.created and not second.created
    assert first.id == second.id
    found = vercel_resources(sandbox, app)
    assert [p["id"] for p in found["projects"]] == [first.id]
    marker = [e for e in found["env"] if e["key"] == "FORGE_DEPLOY_APP"]
    assert len(marker) == 1 and marker[0]["value"] == app and marker[0]["type"] == "plain"
    assert checkpoints(stream)["vercel.project_id"] == first.id


def test_someone_elses_project_is_refused(
    sandbox: SandboxProcess, run_context: RunContext, unique: str
) -> None:
    app = f"theirs-{unique}"
    run_context.vercel.request("POST", "/v11/projects", json={"name": app}, idempotent=False)
    with pytest.raises(NotOurs) as not_ours:
        vercel_step.ensure_project(run_context, app)
    assert app in str(not_ours.value) and "FORGE_DEPLOY_APP" in str(not_ours.value)
    refused = vercel_step.plan_app(run_context, app)
    assert [(e["resource"], e["action"]) for e in refused] == [("vercel.project", "refuse")]
    assert "FORGE_DEPLOY_APP" in refused[0]["detail"]
    with pytest.raises(NotOurs):
        vercel_step.teardown_app(run_context, app)
    # a project marked for another app is not ours either
    other = f"other-{unique}"
    VercelClient(run_context.vercel).create_project(
        other, [EnvItem("FORGE_DEPLOY_APP", "somebody-else", "plain", ("production",))], None
    )
    with pytest.raises(NotOurs):
        vercel_step.ensure_project(run_context, other)
    assert len(vercel_resources(sandbox, app)["projects"]) == 1
    assert len(vercel_resources(sandbox, other)["projects"]) == 1


def test_plan_then_teardown(
    sandbox: SandboxProcess, run_context: RunContext, unique: str, tmp_path: Path
) -> None:
    app = f"plan-{unique}"
    copy = build(tmp_path, "p", site(unique))
    fresh = vercel_step.plan_app(run_context, app, copy)
    assert [(e["resource"], e["action"]) for e in fresh] == [
        ("vercel.project", "create"),
        *[("vercel.env", "create")] * len(vercel_env.ENV_TYPES),
        ("vercel.deployment", "create"),
    ]
    assert "3 files" in fresh[0]["detail"]
    project = vercel_step.ensure_project(run_context, app)
    half = vercel_step.plan_app(run_context, app)
    assert [e["action"] for e in half] == ["none", *["create"] * len(vercel_env.ENV_TYPES)]
    VercelClient(run_context.vercel).upsert_env(
        project.id,
        [EnvItem("SUPABASE_SERVICE_ROLE_KEY", "not-yet-sensitive", "encrypted", ("production",))],
    )
    typed = {e["name"]: e["action"] for e in vercel_step.plan_app(run_context, app)}
    assert typed["SUPABASE_SERVICE_ROLE_KEY"] == "update"
    vercel_env.set_env(run_context, project.id, env_values("x"))
    writes = len(vercel_writes(sandbox))
    assert {e["action"] for e in vercel_step.plan_app(run_context, app)} == {"none"}
    with_content = vercel_step.plan_app(run_context, app, copy)
    assert with_content[-1]["action"] == "create"  # nothing serves production yet
    assert len(vercel_writes(sandbox)) == writes  # plan only reads
    assert vercel_step.teardown_app(run_context, app) == "deleted"
    assert vercel_resources(sandbox, app)["projects"] == []
    assert vercel_step.teardown_app(run_context, app) == "absent"


# -- env vars --------------------------------------------------------------------------------
def env_values(tag: str) -> dict[str, str]:
    return vercel_env.supabase_env(
        f"https://{tag}ref.supabase.example",
        f"sb_publishable_{tag}_value_0123456789",
        f"sb_secret_{tag}_value_0123456789",
    )


def test_env_vars_set_readable_and_never_duplicated(
    sandbox: SandboxProcess, runner_env: dict[str, str], unique: str
) -> None:
    ctx, stream = context(runner_env)
    app = f"env-{unique}"
    project = vercel_step.ensure_project(ctx, app)
    for tag in ("one", "two"):
        values = env_values(f"{tag}{unique}")
        for value in values.values():
            ctx.masker.register(value)
        keys = vercel_env.set_env(ctx, project.id, values)
        assert keys == sorted(values)
        read = VercelClient(ctx.vercel).list_env(project.id, decrypt=True)
        by_key = {v.key: v for v in read}
        assert sorted(by_key) == sorted([*values, "FORGE_DEPLOY_APP"])
        assert len(read) == len(by_key)  # one variable per key, never a duplicate
        public = (
            "NEXT_PUBLIC_SUPABASE_URL",
            "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY",
            "NEXT_PUBLIC_SUPABASE_ANON_KEY",
        )
        for key in public:
            assert by_key[key].type == "encrypted" and by_key[key].value == values[key]
            assert set(by_key[key].targets) == {"production", "preview"}
        for key in ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
            service = by_key[key]
            assert service.type == "sensitive" and service.value is None  # never readable back
            assert service.targets == ("production",)  # server-only: never on a preview
            assert values[key] not in stream.getvalue()
        assert values["NEXT_PUBLIC_SUPABASE_ANON_KEY"] not in stream.getvalue()
    assert len(vercel_resources(sandbox, app)["env"]) == 1 + len(vercel_env.ENV_TYPES)


def test_a_failed_env_item_is_fatal(run_context: RunContext, unique: str) -> None:
    """`upsert=true` (what set_env uses) never fails an item in the sandbox; a plain create of
    an existing key does, inside a 201 — the client must not ignore it."""
    project = vercel_step.ensure_project(run_context, f"envfail-{unique}")
    vercel = VercelClient(run_context.vercel)
    targets = ("production", "preview")
    vercel.upsert_env(project.id, [EnvItem("TAKEN_KEY", "first-value", "encrypted", targets)])
    mixed = [
        EnvItem("TAKEN_KEY", "second-value", "encrypted", targets),
        EnvItem("NEW_KEY", "new-value", "encrypted", targets),
    ]
    with pytest.raises(FatalError) as failed:
        vercel.upsert_env(project.id, mixed, upsert=False)
    message = str(failed.value)
    assert "TAKEN_KEY" in message and "ENV_ALREADY_EXISTS" in message
    assert "NEW_KEY" not in message and "second-value" not in message
    assert failed.value.status == 201
    # every item failing is a 403 with the provider's message
    with pytest.raises(FatalError) as refused:
        vercel.upsert_env(project.id, mixed[:1], upsert=False)
    assert refused.value.status == 403 and "TAKEN_KEY" in refused.value.message


def test_a_permanent_4xx_is_fatal_with_the_providers_message(
    run_context: RunContext, unique: str
) -> None:
    with pytest.raises(FatalError) as bad:
        vercel_step.ensure_project(run_context, f"Bad Name {unique}")
    assert bad.value.status == 400 and "lowercase" in bad.value.message


# -- deploy and promote ----------------------------------------------------------------------
def test_staged_deploy_then_promote_serves_it(
    sandbox: SandboxProcess, runner_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    ctx, stream = context(runner_env)
    app = f"web-{unique}"
    project = vercel_step.ensure_project(ctx, app)
    copy = build(tmp_path, "v1", site(unique))
    result = vercel_step.deploy(ctx, project, copy)
    assert (result.files, result.uploaded, result.reused) == (3, 3, False)
    ready = vercel_step.wait_ready(ctx, result.deployment.id)
    assert ready.ready_state == "READY" and ready.ready_substate == "STAGED"
    assert ready.alias == () and not ready.auto_assign_custom_domains
    assert vercel_step.current_production(ctx, project) is None
    production = f"https://{VercelClient(ctx.vercel).list_domains(project.id)[0]}/"
    assert fetch(sandbox, production).status_code == 404  # staged: not serving production
    assert f"hello {unique}" in fetch(sandbox, f"https://{ready.url}/").text

    url = vercel_step.promote(ctx, project, ready)
    page = fetch(sandbox, url + "/")
    assert page.status_code == 200 and f"hello {unique}" in page.text
    current = vercel_step.current_production(ctx, project)
    assert current is not None and current.id == ready.id
    assert current.ready_substate == "PROMOTED"
    assert checkpoints(stream) == {
        "vercel.project_id": project.id,
        "vercel.deployment_id": ready.id,
        "vercel.url": url,
    }
    # resume: promoting again, and deploying again in the same deploy, change nothing
    promotes = calls(sandbox, "POST", r"/promote/")
    assert vercel_step.promote(ctx, project, ready) == url
    again = vercel_step.deploy(ctx, project, copy)
    assert again.reused and again.deployment.id == ready.id and again.uploaded == 0
    assert calls(sandbox, "POST", r"/promote/") == promotes
    assert len(vercel_resources(sandbox, app)["deployments"]) == 1


def test_redeploy_uploads_only_the_changed_file(
    sandbox: SandboxProcess, run_context: RunContext, unique: str, tmp_path: Path
) -> None:
    project = vercel_step.ensure_project(run_context, f"redo-{unique}")
    first = vercel_step.deploy(run_context, project, build(tmp_path, "a", site(unique)))
    assert first.uploaded == 3
    changed = {**site(unique), "about.html": f"<p>about {unique}, changed</p>\n"}
    second = vercel_step.deploy(run_context, project, build(tmp_path, "b", changed))
    assert (second.files, second.uploaded, second.reused) == (3, 1, False)
    rebuilt = vercel_step.deploy(
        run_context, project, build(tmp_path, "c", changed), force_new=True
    )
    assert rebuilt.uploaded == 0 and rebuilt.deployment.id != second.deployment.id
    assert rebuilt.deployment.meta["forgeAttempt"] == "2"
    ready = vercel_step.wait_ready(run_context, second.deployment.id)
    assert "changed" in fetch(sandbox, f"https://{ready.url}/about.html").text
    assert len(vercel_resources(sandbox, project.name)["deployments"]) == 3


def test_unstaged_production_deploy_takes_the_domains_itself(
    sandbox: SandboxProcess, run_context: RunContext, unique: str, tmp_path: Path
) -> None:
    project = vercel_step.ensure_project(run_context, f"direct-{unique}")
    result = vercel_step.deploy(
        run_context, project, build(tmp_path, "d", site(unique)), staged=False
    )
    ready = vercel_step.wait_ready(run_context, result.deployment.id)
    url = vercel_step.promote(run_context, project, ready)
    assert f"hello {unique}" in fetch(sandbox, url + "/").text
    assert calls(sandbox, "POST", rf"/v10/projects/{project.id}/promote/") == 0


# -- faults ----------------------------------------------------------------------------------
VERCEL_CALLS = [
    ("GET", r"^/v9/projects/[^/]+$"),
    ("POST", r"^/v11/projects$"),
    ("POST", r"^/v10/projects/[^/]+/env$"),
    ("POST", r"^/v2/files$"),
    ("POST", r"^/v13/deployments$"),
    ("GET", r"^/v7/deployments$"),
    ("GET", r"^/v13/deployments/"),
    ("GET", r"^/v9/projects/[^/]+/domains$"),
    ("GET", r"^/v2/deployments/[^/]+/aliases$"),
    ("POST", r"^/v10/projects/[^/]+/promote/"),
]
FAULTS = {
    "503-twice": {"action": "status", "status": 503, "times": 2},
    "429-retry-after": {"action": "status", "status": 429, "retry_after": 1, "times": 1},
    "reset": {"action": "reset", "times": 1},
}


def full_flow(ctx: RunContext, app: str, copy: workcopy.WorkCopy) -> tuple[str, str, str]:
    project = vercel_step.ensure_project(ctx, app)
    vercel_env.set_env(ctx, project.id, env_values("fault"))
    result = vercel_step.deploy(ctx, project, copy)
    ready = vercel_step.wait_ready(ctx, result.deployment.id)
    return project.id, ready.id, vercel_step.promote(ctx, project, ready)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_on_every_call_end_with_one_of_each(
    sandbox: SandboxProcess,
    run_context: RunContext,
    unique: str,
    tmp_path: Path,
    fault: str,
) -> None:
    app = f"fault-{unique}"
    copy = build(tmp_path, "f", site(unique))
    sandbox.set_faults(
        [
            {"service": "vercel", "method": method, "path": path, **FAULTS[fault]}
            for method, path in VERCEL_CALLS
        ]
    )
    project_id, deployment_id, url = full_flow(run_context, app, copy)
    rules = sandbox.admin("GET", "faults").json()
    assert all(rule["hits"] == rule["times"] for rule in rules), rules  # every call was hit
    sandbox.set_faults([])
    found = vercel_resources(sandbox, app)
    assert [p["id"] for p in found["projects"]] == [project_id]
    assert [d["id"] for d in found["deployments"]] == [deployment_id]
    assert len(found["env"]) == 1 + len(vercel_env.ENV_TYPES)
    assert f"hello {unique}" in fetch(sandbox, url + "/").text


@pytest.mark.parametrize(
    "path", [r"^/v11/projects$", r"^/v13/deployments$", r"^/v10/projects/[^/]+/promote/"]
)
def test_a_create_whose_answer_is_lost_is_not_repeated(
    sandbox: SandboxProcess, run_context: RunContext, unique: str, tmp_path: Path, path: str
) -> None:
    app = f"lost-{unique}"
    copy = build(tmp_path, "l", site(unique))
    # the files are already known, so the first deployment create succeeds (and is lost)
    for entry in copy.files():
        VercelClient(run_context.vercel).upload_file(entry.sha1, copy.read(entry.path))
    lost = {"action": "timeout_after_success", "times": 1}
    sandbox.set_faults([{"service": "vercel", "method": "POST", "path": path, **lost}])
    project_id, deployment_id, url = full_flow(run_context, app, copy)
    assert sandbox.admin("GET", "faults").json()[0]["hits"] == 1
    sandbox.set_faults([])
    found = vercel_resources(sandbox, app)
    assert [p["id"] for p in found["projects"]] == [project_id]
    assert [d["id"] for d in found["deployments"]] == [deployment_id]
    assert f"hello {unique}" in fetch(sandbox, url + "/").text


# -- a failed build --------------------------------------------------------------------------
def test_a_canceled_build_is_build_failed(
    sandbox: SandboxProcess, run_context: RunContext, unique: str, tmp_path: Path
) -> None:
    """The sandbox never ends a build in ERROR; CANCELED is the other terminal failure."""
    project = vercel_step.ensure_project(run_context, f"cancel-{unique}")
    sandbox.set_time_scale(1.0)  # a real-length queue, so the build can be canceled
    result = vercel_step.deploy(run_context, project, build(tmp_path, "x", site(unique)))
    run_context.vercel.request("PATCH", f"/v12/deployments/{result.deployment.id}/cancel")
    with pytest.raises(vercel_step.BuildFailed) as failed:
        vercel_step.wait_ready(run_context, result.deployment.id)
    assert failed.value.state == "CANCELED" and failed.value.step == "vercel"
    assert result.deployment.id in str(failed.value)
    # a canceled build is not reused: the same deploy builds again
    again = vercel_step.deploy(run_context, project, build(tmp_path, "y", site(unique)))
    assert not again.reused and again.deployment.id != result.deployment.id


# -- parallel uploads ------------------------------------------------------------------------
def many_files(tag: str, n: int) -> dict[str, str]:
    return {**site(tag), **{f"assets/part-{i:03}.txt": f"{tag} part {i}\n" for i in range(n)}}


def test_parallel_uploads_send_every_missing_file_once_through_faults(
    sandbox: SandboxProcess, runner_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    ctx, _ = context(runner_env, FORGE_VERCEL_UPLOADS="8")
    copy = build(tmp_path, "p", many_files(unique, 60))
    before = calls(sandbox, "POST", r"^/v2/files$")
    sandbox.set_faults(
        [
            {"service": "vercel", "method": "POST", "path": r"^/v2/files$", **fault}
            for fault in (
                {"action": "status", "status": 503, "times": 3},
                {"action": "reset", "times": 2},
            )
        ]
    )
    project = vercel_step.ensure_project(ctx, f"many-{unique}")
    result = vercel_step.deploy(ctx, project, copy)
    rules = sandbox.admin("GET", "faults").json()
    sandbox.set_faults([])
    assert all(rule["hits"] == rule["times"] for rule in rules), rules
    assert (result.files, result.uploaded) == (63, 63)
    # each file answered once (the traffic log keeps answered calls; the faults were all hit)
    assert calls(sandbox, "POST", r"^/v2/files$") - before == 63
    ready = vercel_step.wait_ready(ctx, result.deployment.id)
    assert fetch(sandbox, f"https://{ready.url}/assets/part-059.txt").text == f"{unique} part 59\n"


def test_a_refused_upload_stops_the_others_and_creates_no_deployment(
    sandbox: SandboxProcess, runner_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    ctx, _ = context(runner_env, FORGE_VERCEL_UPLOADS="4")
    copy = build(tmp_path, "r", many_files(unique, 40))
    before = calls(sandbox, "POST", r"^/v2/files$")
    project = vercel_step.ensure_project(ctx, f"refused-{unique}")
    sandbox.set_faults(
        [{"service": "vercel", "method": "POST", "path": r"^/v2/files$", "action": "status",
          "status": 403, "times": 1}]
    )  # fmt: skip
    with pytest.raises(FatalError) as refused:
        vercel_step.deploy(ctx, project, copy)
    sandbox.set_faults([])
    assert refused.value.status == 403
    assert vercel_resources(sandbox, project.name)["deployments"] == []
    sent = calls(sandbox, "POST", r"^/v2/files$") - before
    assert sent < 42  # the uploads not yet started when the refusal came were never sent
