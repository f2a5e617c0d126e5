"""The Vercel emulator's REST API and serving, called directly: error shapes, env vars, file
uploads, the deployment lifecycle (stream, cancel, restart), promotion rules, app serving; plus
the pure lifecycle and rate-limit decisions."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from sandbox.vercel import lifecycle
from sandbox.vercel.ratelimit import RateLimiter
from tests.support.sandbox import SandboxProcess
from tests.support.vercel_api import (
    MAX_POLLS,
    POLL_S,
    VercelApi,
    bypass_secret,
    deployments_of,
    fetch,
    inline,
    production_url,
    sha1,
)

PAGE = b"<h1>api</h1>\n"


def _error(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    return error


# -- errors --------------------------------------------------------------------------------
def test_tokens_and_team_scope_are_checked(sandbox: SandboxProcess) -> None:
    assert VercelApi(sandbox, token="wrong")("GET", "/v2/user").status_code == 403
    _error(VercelApi(sandbox, token="wrong")("GET", "/v10/projects"), 403, "forbidden")
    _error(VercelApi(sandbox, token="")("GET", "/v10/projects"), 401, "forbidden")
    api = VercelApi(sandbox)
    _error(api("GET", "/v10/projects", params={"teamId": "team_someone_else"}), 403, "forbidden")
    user = api("GET", "/v2/user").json()["user"]
    assert user["version"] == "northstar"
    assert user["defaultTeamId"] == sandbox.info["vercel"]["team"]
    teams = api("GET", "/v1/teams").json()["teams"]
    assert [t["id"] for t in teams] == [sandbox.info["vercel"]["team"]]
    team_less = requests.get(
        f"{api.base}/v10/projects",
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=30,
    )
    assert team_less.status_code == 200  # personal scope resolves to the default team


def test_bad_requests_answer_in_vercels_error_shape(sandbox: SandboxProcess, unique: str) -> None:
    api = VercelApi(sandbox)
    name = f"errors-{unique}"
    _error(api("GET", f"/v9/projects/missing-{unique}"), 404, "not_found")
    _error(api("GET", "/v13/deployments/dpl_doesnotexist"), 404, "not_found")
    _error(api("GET", "/v1/nowhere"), 404, "not_found")
    api.create_project(name)
    _error(api("POST", "/v11/projects", json={"name": name}), 409, "conflict")
    malformed = {"data": "{not json", "headers": {"Content-Type": "application/json"}}
    _error(api("POST", "/v11/projects", **malformed), 400, "bad_request")
    _error(api("POST", f"/v10/projects/{name}/env", **malformed), 400, "bad_request")
    _error(api("POST", "/v13/deployments", **malformed), 400, "bad_request")
    _error(api("POST", "/v11/projects", json={"framework": "nextjs"}), 400, "bad_request")
    _error(api("POST", "/v11/projects", json={"name": "Not Valid!"}), 400, "bad_request")
    _error(api("POST", "/v13/deployments", json={"files": []}), 400, "bad_request")
    _error(
        api("POST", "/v13/deployments", json={"name": name, "files": [{"file": "../x"}]}),
        400,
        "bad_request",
    )


def test_file_uploads_are_content_addressed_and_checked(
    sandbox: SandboxProcess, unique: str
) -> None:
    api = VercelApi(sandbox)
    data = f"/* {unique} */\n".encode()
    wrong = api(
        "POST", "/v2/files", data=data, headers={"x-vercel-digest": sha1(b"something else")}
    )
    error = _error(wrong, 400, "bad_request")
    assert sha1(data) in error["message"] and "doesn't match" in error["message"]
    short = api(
        "POST",
        "/v2/files",
        data=data,
        headers={"x-now-digest": sha1(data), "x-now-size": str(len(data) + 1)},
    )
    _error(short, 400, "bad_request")
    _error(api("POST", "/v2/files", data=data), 400, "bad_request")  # no digest at all

    name = f"files-{unique}"
    files = [inline("index.html", PAGE), {"file": "app.css", "sha": sha1(data), "size": len(data)}]
    missing = api("POST", "/v13/deployments", json={"name": name, "files": files})
    assert _error(missing, 400, "missing_files")["missing"] == [sha1(data)]
    assert api.upload(data).status_code == 200
    assert api.upload(data).status_code == 200  # already stored: still 200
    legacy = api("POST", "/v2/files", data=data, headers={"x-now-digest": sha1(data)})
    assert legacy.status_code == 200
    deployment = api.deploy(name, files, target="production")
    assert fetch(sandbox, f"{api.wait(deployment['id'])['url']}/app.css").content == data


def test_rate_limit_answers_carry_error_limit(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(
        [{"service": "vercel", "path": "^/v10/projects$", "action": "status", "status": 429}]
    )
    answer = VercelApi(sandbox)("GET", "/v10/projects")
    limit = _error(answer, 429, "rate_limited")["limit"]
    assert set(limit) == {"remaining", "reset", "resetMs", "total"} and limit["remaining"] == 0


def test_rate_limiter_counts_per_window_and_reopens() -> None:
    now = [1000.0]
    limiter = RateLimiter(lambda: now[0], window_s=60)
    decisions = [limiter.hit("deploy", 2) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].limit() == {
        "remaining": 0,
        "reset": 1060,
        "resetMs": 1060000,
        "total": 2,
    }
    assert limiter.hit("other", 2).allowed  # budgets are per endpoint
    now[0] = 1060.0
    reopened = limiter.hit("deploy", 2)
    assert reopened.allowed and reopened.remaining == 1


# -- env vars ------------------------------------------------------------------------------
def test_env_vars_conflict_upsert_filter_and_hide_sensitive_values(
    sandbox: SandboxProcess, unique: str
) -> None:
    api = VercelApi(sandbox)
    project = api.create_project(f"env-{unique}")
    path = f"/v10/projects/{project}/env"
    first = api(
        "POST",
        path,
        json={"key": "DB", "value": "one", "type": "encrypted", "target": ["production"]},
    )
    assert first.status_code == 201 and first.json()["failed"] == []
    env_id = first.json()["created"]["id"]
    again = {"key": "DB", "value": "two", "type": "encrypted", "target": ["production"]}
    _error(api("POST", path, json=again), 403, "ENV_ALREADY_EXISTS")
    batch = api(
        "POST",
        path,
        json=[again, {"key": "KEY", "value": "k", "type": "sensitive", "target": "preview"}],
    )
    assert batch.status_code == 201
    assert [c["key"] for c in batch.json()["created"]] == ["KEY"]
    assert batch.json()["failed"][0]["error"]["code"] == "ENV_ALREADY_EXISTS"
    upserted = api("POST", path, params={"upsert": "true"}, json=again)
    assert upserted.status_code == 201 and upserted.json()["created"]["id"] == env_id

    listed = api("GET", path, params={"target": "production", "decrypt": "true"}).json()
    assert [(e["key"], e["value"]) for e in listed["envs"]] == [("DB", "two")]
    hidden = api("GET", path, params={"target": "preview", "decrypt": "true"}).json()["envs"]
    assert hidden[0]["key"] == "KEY" and hidden[0]["value"] == ""
    encrypted = api("GET", path, params={"target": "production"}).json()["envs"][0]["value"]
    assert encrypted != "two"
    assert api("GET", f"/v1/projects/{project}/env/{env_id}").json()["value"] == "two"
    edited = api("PATCH", f"/v9/projects/{project}/env/{env_id}", json={"value": "three"})
    assert edited.status_code == 200
    pulled = api("GET", f"/v3/env/pull/{project}/production").json()
    assert pulled == {"env": {"DB": "three"}}
    assert api("DELETE", f"/v9/projects/{project}/env/{env_id}").status_code == 200
    _error(api("GET", f"/v1/projects/{project}/env/{env_id}"), 404, "not_found")
    _error(
        api(
            "POST",
            path,
            json={"key": "S", "value": "v", "type": "sensitive", "target": "development"},
        ),
        400,
        "bad_request",
    )


# -- lifecycle -----------------------------------------------------------------------------
def test_build_log_streams_until_the_build_ends_then_closes(
    sandbox: SandboxProcess, unique: str
) -> None:
    sandbox.set_time_scale(0.02)  # a build of ~2.5 s, so the stream really follows it
    api = VercelApi(sandbox)
    deployment = api.deploy(f"logs-{unique}", [inline("index.html", PAGE)])
    # QUEUED lasts 0.1 s at this scale: a loaded machine may answer once the build started
    assert deployment["readyState"] in ("QUEUED", "BUILDING")
    with api(
        "GET",
        f"/v3/now/deployments/{deployment['id']}/events",
        params={"follow": "1", "direction": "forward", "format": "lines"},
        stream=True,
    ) as stream:
        assert stream.status_code == 200
        events = [json.loads(line) for line in stream.iter_lines() if line]
    states = [e["text"] for e in events if e["type"] == "deployment-state"]
    assert states == [
        "Deployment state: QUEUED",
        "Deployment state: BUILDING",
        "Deployment state: READY",
    ]
    assert {"command", "stdout"} <= {e["type"] for e in events}
    assert api.deployment(deployment["id"])["readyState"] == "READY"
    array = api("GET", f"/v3/deployments/{deployment['id']}/events").json()
    assert [e["id"] for e in array] == [e["id"] for e in events]
    final = api.wait(deployment["id"])
    assert final["aliasAssigned"] is True and "target" not in final  # a preview
    assert final["alias"] == []  # previews never take the production alias


def test_cancel_stops_a_queued_build_and_delete_removes_it(
    sandbox: SandboxProcess, unique: str
) -> None:
    sandbox.set_time_scale(1.0)  # realistic: QUEUED for 5 s
    api = VercelApi(sandbox)
    deployment = api.deploy(f"cancel-{unique}", [inline("index.html", PAGE)], target="production")
    not_ready = fetch(sandbox, deployment["url"] + "/")
    assert not_ready.status_code == 404 and "not ready" in not_ready.text
    canceled = api("PATCH", f"/v12/deployments/{deployment['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["readyState"] == "CANCELED"
    with api(
        "GET", f"/v3/now/deployments/{deployment['id']}/events", params={"follow": "1"}, stream=True
    ) as stream:
        texts = [json.loads(line)["text"] for line in stream.iter_lines() if line]
    assert texts[-1] == "Deployment state: CANCELED"
    assert fetch(sandbox, deployment["url"] + "/").status_code == 404
    listed = api("GET", "/v6/deployments", params={"projectId": deployment["projectId"]}).json()
    assert [d["state"] for d in listed["deployments"]] == ["CANCELED"]
    deleted = api("DELETE", f"/v13/deployments/{deployment['id']}")
    assert deleted.json() == {"uid": deployment["id"], "state": "DELETED"}
    _error(api("GET", f"/v13/deployments/{deployment['id']}"), 404, "not_found")


def test_deployments_list_filters_and_pages(sandbox: SandboxProcess, unique: str) -> None:
    api = VercelApi(sandbox)
    name = f"list-{unique}"
    ids = [
        api.deploy(name, [inline("index.html", PAGE)], target=target)["id"]
        for target in ("production", None, "production")
    ]
    project = api("GET", f"/v9/projects/{name}").json()["id"]
    page1 = api("GET", "/v7/deployments", params={"projectId": project, "limit": 2}).json()
    assert [d["uid"] for d in page1["deployments"]] == ids[::-1][:2]
    until = page1["pagination"]["next"]
    page2 = api(
        "GET", "/v6/deployments", params={"projectId": project, "limit": 2, "until": until}
    ).json()
    assert [d["uid"] for d in page2["deployments"]] == [ids[0]]
    assert page2["pagination"]["next"] is None
    production = api(
        "GET", "/v6/deployments", params={"projectId": project, "target": "production"}
    ).json()
    assert {d["uid"] for d in production["deployments"]} == {ids[0], ids[2]}


def test_deployments_survive_a_sandbox_restart(sandbox: SandboxProcess, unique: str) -> None:
    api = VercelApi(sandbox)
    name = f"restart-{unique}"
    deployment = api.deploy(name, [inline("index.html", PAGE)], target="production")
    api.wait(deployment["id"])
    sandbox.restart()
    api = VercelApi(sandbox)
    again = api.deployment(deployment["id"])
    assert again["readyState"] == "READY" and again["aliasAssigned"] is True
    assert fetch(sandbox, production_url(sandbox, name)).content == PAGE


# -- promotion and serving -----------------------------------------------------------------
def _wait_for_production(sandbox: SandboxProcess, project: str, body: str) -> None:
    for _ in range(MAX_POLLS):
        if fetch(sandbox, production_url(sandbox, project)).text == body:
            return
        time.sleep(POLL_S)
    raise AssertionError(f"the production alias of {project} never served {body!r}")


def test_promote_rules_and_rollback(sandbox: SandboxProcess, unique: str) -> None:
    api = VercelApi(sandbox)
    name = f"promote-{unique}"
    first = api.deploy(name, [inline("index.html", b"one")], target="production")
    api.wait(first["id"])
    preview = api.wait(api.deploy(name, [inline("index.html", b"preview")])["id"])
    staged = api.deploy(
        name, [inline("index.html", b"two")], target="production", autoAssignCustomDomains=False
    )
    staged = api.wait(staged["id"])
    project = first["projectId"]
    _error(api("POST", f"/v10/projects/{project}/promote/{preview['id']}"), 400, "bad_request")
    sandbox.set_time_scale(1.0)  # the switch takes 2 s: a second request conflicts
    assert api("POST", f"/v10/projects/{project}/promote/{staged['id']}").status_code == 201
    _error(api("POST", f"/v10/projects/{project}/promote/{first['id']}"), 409, "conflict")
    assert fetch(sandbox, production_url(sandbox, name)).text == "one"  # not switched yet
    _wait_for_production(sandbox, name, "two")
    sandbox.set_time_scale(0.0)
    rollback = api("POST", f"/v1/projects/{project}/rollback/{first['id']}")
    assert rollback.status_code == 201
    sandbox.set_time_scale(0.0)
    assert fetch(sandbox, production_url(sandbox, name)).text == "one"
    aliases = api("GET", f"/v2/deployments/{first['id']}/aliases").json()["aliases"]
    assert [a["alias"] for a in aliases] == [api.production_alias_of(name)]
    assigned = api("POST", f"/v2/deployments/{staged['id']}/aliases", json={"alias": f"x-{unique}"})
    assert assigned.status_code == 200 and assigned.json()["alias"] == f"x-{unique}"
    inventory = sandbox.resources()["vercel"]["aliases"]
    assert {"alias": f"x-{unique}", "deploymentId": staged["id"], "production": False} in inventory


def test_an_app_without_index_html_gets_a_page_and_a_health_check(
    sandbox: SandboxProcess, unique: str
) -> None:
    api = VercelApi(sandbox)
    name = f"nextapp-{unique}"
    files = [
        inline("package.json", b'{"name": "app", "scripts": {"build": "next build"}}'),
        inline("app/page.tsx", b"export default function Page() { return <h1>hi</h1> }"),
        inline("public/logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
    ]
    deployment = api.wait(
        api.deploy(name, files, target="production", projectSettings={"framework": "nextjs"})["id"]
    )
    home = fetch(sandbox, deployment["url"] + "/")
    assert home.status_code == 200 and name in home.text and deployment["id"] in home.text
    health = fetch(sandbox, deployment["url"] + "/api/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    logo = fetch(sandbox, deployment["url"] + "/logo.svg")
    assert logo.status_code == 200 and logo.headers["content-type"].startswith("image/svg+xml")
    assert fetch(sandbox, deployment["url"] + "/package.json").status_code == 404


def test_output_directory_is_served(sandbox: SandboxProcess, unique: str) -> None:
    api = VercelApi(sandbox)
    files = [inline("src/index.html", b"source"), inline("dist/index.html", b"built")]
    deployment = api.wait(
        api.deploy(
            f"outdir-{unique}", files, projectSettings={"outputDirectory": "dist"}, target=None
        )["id"]
    )
    assert fetch(sandbox, deployment["url"]).status_code == 401  # a preview, protected today
    secret = bypass_secret(api, f"outdir-{unique}")
    bypass = {"x-vercel-protection-bypass": secret}
    assert fetch(sandbox, deployment["url"], bypass).text == "built"
    assert deployments_of(sandbox, f"outdir-{unique}")[0]["files"] == 2


# -- pure lifecycle ------------------------------------------------------------------------
def _record(target: str | None = "production", **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", "dpl_a"),
        "buildId": "bld_a",
        "target": target,
        "createdAt": 100,
        "buildingAt": 200,
        "readyAt": 300,
        "aliasAt": 400,
        "canceledAt": None,
        "files": {"index.html": "0" * 40},
        **extra,
    }


def test_states_follow_the_stored_timestamps() -> None:
    deployment = _record()
    assert [lifecycle.ready_state(deployment, t) for t in (100, 200, 299, 300)] == [
        "QUEUED",
        "BUILDING",
        "BUILDING",
        "READY",
    ]
    assert not lifecycle.alias_assigned(deployment, 399)
    assert lifecycle.alias_assigned(deployment, 400)
    canceled = _record(canceledAt=250)
    assert lifecycle.ready_state(canceled, 1000) == "CANCELED"
    assert lifecycle.build_log(canceled)[-1]["text"] == "Deployment state: CANCELED"


def test_production_follows_auto_assignment_and_alias_requests() -> None:
    first = _record(id="dpl_1")
    times: dict[str, Any] = {"createdAt": 500, "buildingAt": 600, "readyAt": 700, "aliasAt": 800}
    staged = _record(id="dpl_2", autoAssignCustomDomains=False, **times)
    project: dict[str, Any] = {"aliasRequests": []}
    both = [first, staged]
    assert lifecycle.current_production(project, both, 399) is None
    assert lifecycle.current_production(project, both, 1000) is first
    assert lifecycle.ready_substate(staged, project, both, 1000) == "STAGED"
    project["aliasRequests"].append(
        {"type": "promote", "toDeploymentId": "dpl_2", "requestedAt": 1000, "effectiveAt": 1100}
    )
    assert lifecycle.current_production(project, both, 1099) is first
    assert lifecycle.current_production(project, both, 1100) is staged
    assert lifecycle.ready_substate(staged, project, both, 1100) == "PROMOTED"
    assert lifecycle.current_production(project, [first], 1100) is first  # deleted: falls back
