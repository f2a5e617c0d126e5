"""`POST /v13/deployments`: inline and sha-referenced files (400 `missing_files` for shas never
uploaded), project by `project`/`name` (created when new), redeploys by `deploymentId`, the
env check that makes a READY deployment serve 500s when a required variable is missing, and
the Node check that fails a build on a Node version Vercel no longer builds on (`today`)."""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.vercel import buildcheck, today
from sandbox.vercel.auth import endpoint
from sandbox.vercel.env import KEY, variables_for
from sandbox.vercel.errors import VercelError, json_object, query_flag
from sandbox.vercel.files import SHA1, FileStore
from sandbox.vercel.projects import create_project
from sandbox.vercel.ratelimit import DEPLOY_BUDGET
from sandbox.vercel.render import FRAMEWORKS, PROJECT_SETTINGS, SOURCES, deployment_json
from sandbox.vercel.state import VercelState, check_project_name, lower_token, new_id

ENV_EXAMPLE = ".env.example"


def _bad(message: str) -> VercelError:
    return VercelError(400, f"Invalid request: {message}", "bad_request")


def clean_path(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _bad("each file needs a `file` path")
    path = posixpath.normpath(raw.replace("\\", "/").lstrip("/"))
    if path in (".", "") or path.startswith("../") or path == ".." or "\x00" in path:
        raise _bad(f"invalid file path {raw!r}")
    return path


def resolve_files(files: FileStore, entries: object) -> tuple[dict[str, str], list[str]]:
    """path -> sha for every entry (inline data is stored now), and the shas never uploaded."""
    if not isinstance(entries, list) or not entries:
        raise _bad("`files` should be a non-empty array")
    manifest: dict[str, str] = {}
    missing: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _bad("each item of `files` should be an object")
        path = clean_path(entry.get("file"))
        if "data" in entry:
            data = entry["data"]
            encoding = entry.get("encoding", "utf-8")
            if not isinstance(data, str):
                raise _bad(f"`data` of {path} should be string")
            if encoding == "base64":
                try:
                    content = base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise _bad(f"`data` of {path} is not valid base64") from e
            elif encoding in ("utf-8", "utf8"):
                content = data.encode()
            else:
                raise _bad(f"`encoding` of {path} should be base64 or utf-8")
            manifest[path] = files.put(content)
        elif "sha" in entry:
            sha = entry["sha"]
            if not isinstance(sha, str) or not SHA1.match(sha.lower()):
                raise _bad(f"`sha` of {path} should be a SHA1 hex digest")
            sha = sha.lower()
            if not files.has(sha) and sha not in missing:
                missing.append(sha)
            manifest[path] = sha
        else:
            raise _bad(f"file {path} needs either `data` or `sha`")
    return manifest, missing


def required_env(files: FileStore, manifest: dict[str, str], root: str | None) -> set[str]:
    """Keys the app declares in its `.env.example` (non-empty `KEY=...` lines)."""
    path = posixpath.join(root, ENV_EXAMPLE) if root else ENV_EXAMPLE
    sha = manifest.get(posixpath.normpath(path))
    if sha is None or not files.has(sha):
        return set()
    keys: set[str] = set()
    for line in files.read(sha).decode(errors="replace").splitlines():
        line = line.strip().removeprefix("export ").strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key = line.split("=", 1)[0].strip()
        if KEY.match(key):
            keys.add(key)
    return keys


def _target(raw: object) -> str | None:
    if raw is None or raw == "preview":
        return None
    if raw in ("production", "staging"):
        return str(raw)
    raise _bad(f"`target` {raw!r} is not an environment of this project")


def _string_map(raw: object, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _bad(f"`{what}` should be an object of strings")
    return {str(k): v for k, v in raw.items()}


def _settings(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad("`projectSettings` should be an object")
    out: dict[str, Any] = {}
    for key in (*PROJECT_SETTINGS, "framework"):
        value = raw.get(key)
        if value is not None and isinstance(value, str):
            out[key] = value
    if "framework" in out and out["framework"] not in FRAMEWORKS:
        raise _bad(f"`projectSettings.framework` {out['framework']!r} is not supported")
    node = raw.get("nodeVersion")
    if node is not None:
        if node not in today.NODE_VERSIONS:
            raise _bad(f"`projectSettings.nodeVersion` should be one of {today.NODE_VERSIONS}")
        out["nodeVersion"] = node
    return out


def routes(state: VercelState) -> list[Route]:
    async def create(request: Request) -> Response:
        body = await json_object(request)
        name, project_ref = body.get("name"), body.get("project")
        redeploy = body.get("deploymentId")
        if not any(isinstance(v, str) and v for v in (name, project_ref, redeploy)):
            raise VercelError(
                400, "Invalid request: missing required property `name`", "bad_request"
            )
        target = _target(body.get("target"))
        auto_assign = body.get("autoAssignCustomDomains", True)
        if not isinstance(auto_assign, bool):
            raise _bad("`autoAssignCustomDomains` should be boolean")
        settings = _settings(body.get("projectSettings"))
        env_in = _string_map(body.get("env"), "env")
        build = body.get("build") or {}
        build_env = _string_map(build.get("env") if isinstance(build, dict) else None, "build")
        meta = _string_map(body.get("meta"), "meta")
        source = body.get("source") if body.get("source") in SOURCES else "cli"

        if isinstance(redeploy, str) and redeploy:
            original = state.deployment(redeploy)
            manifest = dict(original["files"])
            settings = {**original.get("projectSettings", {}), **settings}
            source = "redeploy" if body.get("source") is None else source
        else:
            manifest, missing = await run_in_threadpool(
                resolve_files, state.files, body.get("files")
            )
            if missing:
                raise VercelError(
                    400,
                    f"Missing files: {len(missing)} file(s) must be uploaded first",
                    "missing_files",
                    missing=missing,
                )

        with state.store.change() as data:
            if isinstance(project_ref, str) and project_ref:
                project = state.project(project_ref)
            elif isinstance(redeploy, str) and redeploy:
                project = state.project(original["projectId"])
            else:
                project = state.find_project(check_project_name(name)) or create_project(
                    state, data, str(name), **settings
                )
            effective = {k: project.get(k) for k in (*PROJECT_SETTINGS, "framework")}
            effective.update(settings)
            engines = today.engines_node(state.files, manifest, effective.get("rootDirectory"))
            node, node_from = today.node_for_build(
                engines, settings.get("nodeVersion") or project.get("nodeVersion")
            )
            node_failure = today.node_error(today.of(project), node, node_from)
            env_target = "production" if target == "production" else "preview"
            available = {v["key"] for v in variables_for(project, env_target, None)}
            available |= set(env_in) | set(build_env)
            required = required_env(state.files, manifest, effective.get("rootDirectory"))
            now = state.now_ms()
            latest = max((d["createdAt"] for d in data["deployments"].values()), default=0)
            created = max(now, latest + 1)
            building = created + state.delay_ms("vercel.queue")
            ready = building + state.delay_ms("vercel.build")
            slug = f"{project['name']}-{lower_token(9)}"
            deployment: dict[str, Any] = {
                "id": new_id("dpl_", 28),
                "buildId": new_id("bld_", 20),
                "slug": slug,
                "url": state.deployment_url(slug),
                "name": project["name"],
                "projectId": project["id"],
                "target": target,
                "autoAssignCustomDomains": auto_assign,
                "createdAt": created,
                "buildingAt": building,
                "readyAt": ready,
                "aliasAt": ready + state.delay_ms("vercel.alias"),
                "canceledAt": None,
                "files": manifest,
                "projectSettings": effective,
                "prebuilt": query_flag(request, "prebuilt"),
                "envKeys": sorted(env_in),
                "buildEnvKeys": sorted(build_env),
                "missingEnv": sorted(required - available),
                "meta": meta,
                "source": source,
                "nodeVersion": node,
            }
            data["deployments"][deployment["id"]] = deployment
            tables = buildcheck.tables_read(state.files, manifest, effective.get("rootDirectory"))
            supabase_url = next(
                (
                    v["value"]
                    for v in variables_for(project, env_target, None)
                    if v["key"] == "NEXT_PUBLIC_SUPABASE_URL"
                ),
                None,
            )
        failure = node_failure or await run_in_threadpool(
            buildcheck.build_error, state.ctx.postgres, tables, supabase_url
        )
        if failure is not None:
            with state.store.change() as data:
                data["deployments"][deployment["id"]]["buildError"] = failure
                deployment = data["deployments"][deployment["id"]]
        return JSONResponse(deployment_json(state, deployment, state.now_ms()))

    return [
        Route("/v13/deployments", endpoint(state, create, budget=DEPLOY_BUDGET), methods=["POST"])
    ]
