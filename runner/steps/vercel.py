"""The Vercel side of a deploy: the project, its env vars, a staged production build, promotion.

Ours = a project named after the app that carries the plain env var `FORGE_DEPLOY_APP=<app>`,
given in `environmentVariables` at create so even a create whose answer was lost carries it.
The project's Node.js version and, at create, its protection are ours to set (`vercel_settings`).
A deployment is ours by its `meta` (`forgeDeployId`, `forgeTree`, `forgeAttempt`): a resumed
deploy finds the build it already made instead of building again, and a create whose answer was
lost is found by its attempt number before anything is created twice. Files are never uploaded
blindly: the deployment is sent first and only the shas Vercel reports missing are uploaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from runner.context import RunContext
from runner.ensure import ensure
from runner.errors import FatalError, NotOurs, StepFailed
from runner.providers.vercel import (
    FAILED_STATES,
    MARKER_KEY,
    PROVIDER,
    Deployment,
    EnvItem,
    MissingFiles,
    Project,
    VercelClient,
)
from runner.steps import vercel_node, vercel_settings
from runner.steps.vercel_env import ENV_TYPES, targets_of
from runner.steps.vercel_files import deployment_body, framework, upload, uploaded_files
from runner.workcopy import FileEntry, WorkCopy

log = logging.getLogger("forge.runner.vercel")

STEP = "vercel"
MARKER_TARGETS = ("production", "preview", "development")
_UPLOAD_ROUNDS = 3


@dataclass(frozen=True)
class VercelProject:
    id: str
    name: str
    created: bool
    node_version: str = vercel_node.DEFAULT


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    files: int  # files in the deployment
    uploaded: int  # files this call had to upload
    reused: bool = False  # an earlier attempt of this deploy had already made it


class BuildFailed(StepFailed):
    """The build ended ERROR or CANCELED; the pipeline may rebuild (e.g. after migrations)."""

    def __init__(
        self, deployment_id: str, state: str, code: str | None, message: str | None
    ) -> None:
        self.deployment_id = deployment_id
        self.state = state
        self.error_code = code
        self.error_message = message
        detail = f"{code}: {message}" if code or message else "no error reported"
        super().__init__(STEP, f"Vercel deployment {deployment_id} ended {state} ({detail})")


def client(ctx: RunContext) -> VercelClient:
    return VercelClient(ctx.vercel)


def _marker(app: str) -> EnvItem:
    return EnvItem(MARKER_KEY, app, "plain", MARKER_TARGETS)


def _ours(project: Project, app: str) -> Project:
    if project.marker != app:
        found = "no such variable" if project.marker is None else f"it is {project.marker!r}"
        raise NotOurs(
            PROVIDER,
            None,
            f"Vercel project {project.name!r} ({project.id}) exists but was not made by "
            f"forge-deploy for {app!r}: its plain env var {MARKER_KEY} should be {app!r}, "
            f"{found}. Refusing to adopt or change it; rename the app or remove that project.",
        )
    return project


# -- project and env ---------------------------------------------------------------------------
def node_of(copy: WorkCopy) -> str:
    """The `nodeVersion` the app's project gets (its package.json `engines.node`, or 24.x)."""
    has_package = (copy.root / "package.json").is_file()
    return vercel_node.node_version(copy.read("package.json") if has_package else None)


def ensure_project(ctx: RunContext, app: str, node: str = vercel_node.DEFAULT) -> VercelProject:
    """Our project, made with Standard protection or adopted as its owner protected it, then
    set to build on `node` (`PATCH`: the create takes no `nodeVersion`)."""
    vercel = client(ctx)

    def find() -> Project | None:
        project = vercel.get_project(app)
        return None if project is None else _ours(project, app)

    def create() -> Project:
        return vercel.create_project(app, [_marker(app)], vercel_settings.PROTECTION)

    project, created = ensure(
        f"Vercel project {app}", find, create, ctx.policy, ctx.wait, ctx.settle
    )
    ctx.checkpoints.put("vercel.project_id", project.id)
    ctx.progress(
        STEP, f"project {app} {'created' if created else 'adopted'}", project_id=project.id
    )
    project = vercel_settings.ensure_node(ctx, vercel, project, node)
    return VercelProject(project.id, project.name, created, project.node_version or node)


# -- deployments -------------------------------------------------------------------------------
def _intent(ctx: RunContext, copy: WorkCopy, staged: bool) -> dict[str, str]:
    return {
        "forgeDeployId": ctx.settings.run.deploy_id,
        "forgeTree": copy.tree,
        "forgeStaged": "1" if staged else "0",
    }


def _matches(deployment: Deployment, intent: dict[str, str]) -> bool:
    return all(deployment.meta.get(k) == v for k, v in intent.items())


def _reusable(deployment: Deployment | None, intent: dict[str, str], project_id: str) -> bool:
    return (
        deployment is not None
        and _matches(deployment, intent)
        and deployment.project_id in (None, project_id)
        and deployment.target == "production"
        and deployment.ready_state not in FAILED_STATES
    )


def deploy(
    ctx: RunContext,
    project: VercelProject,
    copy: WorkCopy,
    *,
    staged: bool = True,
    force_new: bool = False,
) -> DeployResult:
    """Exactly one deployment per intended deploy: a resumed run reuses the build an earlier
    attempt of the same deploy made (same tree), unless `force_new` asks for a fresh build."""
    vercel = client(ctx)
    files = uploaded_files(copy)
    intent = _intent(ctx, copy, staged)
    if not force_new:
        known = ctx.checkpoints.get("vercel.deployment_id")
        earlier = vercel.get_deployment(str(known)) if known else None
        if earlier is not None and _reusable(earlier, intent, project.id):
            return _reuse(ctx, earlier, files)
    ours = [d for d in vercel.list_deployments(project.id) if _matches(d, intent)]
    if not force_new:
        reusable = next((d for d in ours if _reusable(d, intent, project.id)), None)
        if reusable is not None:
            return _reuse(ctx, reusable, files)
    attempt = 1 + max((int(d.meta.get("forgeAttempt", "0") or 0) for d in ours), default=0)
    meta = {**intent, "forgeAttempt": str(attempt)}
    body = deployment_body(project.name, project.id, files, meta, framework(copy, files), staged)
    paths = {f.sha1: f.path for f in files}
    uploaded = 0
    looked = False

    def find() -> Deployment | None:
        nonlocal looked
        if not looked:  # just listed above: nothing of this attempt can exist yet
            looked = True
            return None
        return next(
            (d for d in vercel.list_deployments(project.id) if _matches(d, meta)),
            None,
        )

    def create() -> Deployment:
        nonlocal uploaded
        for _ in range(_UPLOAD_ROUNDS):
            try:
                return vercel.create_deployment(body)
            except MissingFiles as e:
                unknown = [sha for sha in e.missing if sha not in paths]
                if unknown:
                    raise FatalError(
                        PROVIDER, 400, f"Vercel asks for files not in the build: {unknown}"
                    ) from e
                ctx.progress(STEP, f"uploading {len(e.missing)} of {len(files)} files")
                uploaded += upload(ctx, vercel, copy, {sha: paths[sha] for sha in e.missing})
        raise FatalError(PROVIDER, 400, "Vercel still reports missing files after uploading them")

    deployment, _ = ensure(
        f"Vercel deployment of {project.name}", find, create, ctx.policy, ctx.wait, ctx.settle
    )
    ctx.checkpoints.put("vercel.deployment_id", deployment.id)
    ctx.progress(
        STEP,
        f"deployment {deployment.id} created ({uploaded} of {len(files)} files uploaded)",
        deployment_id=deployment.id,
        url=f"https://{deployment.url}",
        staged=staged,
    )
    return DeployResult(deployment, len(files), uploaded)


def _reuse(ctx: RunContext, deployment: Deployment, files: list[FileEntry]) -> DeployResult:
    ctx.checkpoints.put("vercel.deployment_id", deployment.id)
    ctx.progress(STEP, f"deployment {deployment.id} of this deploy reused")
    return DeployResult(deployment, len(files), 0, reused=True)


def wait_ready(ctx: RunContext, deployment_id: str) -> Deployment:
    """Poll until READY; ERROR / CANCELED raise `BuildFailed` with Vercel's error."""
    vercel = client(ctx)
    last: list[str] = []

    def probe() -> Deployment | None:
        deployment = vercel.get_deployment(deployment_id)
        if deployment is None:
            raise StepFailed(STEP, f"Vercel deployment {deployment_id} no longer exists")
        if not last or last[-1] != deployment.ready_state:
            last.append(deployment.ready_state)
            ctx.progress(STEP, f"deployment {deployment_id} is {deployment.ready_state}")
        if deployment.ready_state in FAILED_STATES:
            raise BuildFailed(
                deployment_id,
                deployment.ready_state,
                deployment.error_code,
                deployment.error_message,
            )
        return deployment if deployment.ready_state == "READY" else None

    found: Deployment = ctx.poll(
        STEP, f"Vercel deployment {deployment_id}", probe, ctx.settings.run.vercel_deadline_s
    )
    return found


# -- production --------------------------------------------------------------------------------
def _production_domain(vercel: VercelClient, project: VercelProject) -> str:
    domains = vercel.list_domains(project.id)
    if not domains:
        raise StepFailed(STEP, f"Vercel project {project.name} has no production domain")
    return domains[0]


def production_url(ctx: RunContext, project: VercelProject) -> str:
    """The URL production is served at (known before anything is promoted)."""
    return f"https://{_production_domain(client(ctx), project)}"


def promote(ctx: RunContext, project: VercelProject, deployment: Deployment) -> str:
    """Point production at `deployment` (no rebuild) and wait until its production alias
    serves it; returns the live URL. Already promoted, or a promotion in flight: no new call."""
    vercel = client(ctx)
    alias = _production_domain(vercel, project)

    def pending() -> bool | None:
        if alias in vercel.list_aliases(deployment.id):
            return True
        current = vercel.get_project(project.id)
        if current is None:
            raise StepFailed(STEP, f"Vercel project {project.name} no longer exists")
        request = current.last_alias_request
        if (
            request is not None
            and request.to_deployment_id == deployment.id
            and request.job_status == "in-progress"
        ):
            return True
        if deployment.auto_assign_custom_domains and not deployment.alias_assigned:
            return True  # an unstaged production build takes the domains by itself
        return None

    def request() -> bool:
        vercel.promote(project.id, deployment.id)
        return True

    ensure(f"promotion of {deployment.id}", pending, request, ctx.policy, ctx.wait, ctx.settle)

    def served() -> bool | None:
        return True if alias in vercel.list_aliases(deployment.id) else None

    ctx.poll(STEP, f"production alias {alias}", served, ctx.settings.run.vercel_deadline_s)
    url = f"https://{alias}"
    ctx.checkpoints.put("vercel.url", url)
    ctx.progress(STEP, f"{deployment.id} serves production at {url}", url=url)
    return url


def current_production(ctx: RunContext, project: VercelProject) -> Deployment | None:
    """The deployment that serves the project's production domains now, if any."""
    vercel = client(ctx)
    current = vercel.get_project(project.id)
    if current is None or not current.production_deployment_id:
        return None
    return vercel.get_deployment(current.production_deployment_id)


# -- plan and teardown -------------------------------------------------------------------------
def _entry(resource: str, name: str, action: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "resource": f"vercel.{resource}",
        "name": name,
        "action": action,
        "detail": detail,
        **extra,
    }


def plan_app(ctx: RunContext, app: str, copy: WorkCopy | None = None) -> list[dict[str, Any]]:
    """What the Vercel part of a deploy would change (read-only): the project ("create",
    "none", or "refuse" when it is not ours) and each env var ("create", "update" when its
    type or targets differ, "none"). Values are not known at plan time and not compared."""
    vercel = client(ctx)
    project = vercel.get_project(app)
    what = "Vercel project"
    node = None
    if copy is not None:
        files = uploaded_files(copy)
        node = node_of(copy)
        what += (
            f" ({framework(copy, files) or 'static/other'}, {len(files)} files to deploy, "
            f"Node.js {node})"
        )
    if project is None:
        return [
            _entry("project", app, "create", f"{what}, to be created"),
            *[
                _entry("env", key, "create", f"{ENV_TYPES[key]}, {'+'.join(targets_of(key))}")
                for key in sorted(ENV_TYPES)
            ],
            _entry("deployment", app, "create", "first production deployment"),
        ]
    try:
        _ours(project, app)
    except NotOurs as e:
        return [_entry("project", app, "refuse", e.message, id=project.id)]
    targets: dict[str, set[str]] = {}
    right: dict[str, set[str]] = {}
    for var in vercel.list_env(project.id):
        if var.git_branch is None:
            targets.setdefault(var.key, set()).update(var.targets)
            if var.type == ENV_TYPES.get(var.key):
                right.setdefault(var.key, set()).update(var.targets)
    if node is not None and project.node_version != node:
        detail = f"{what}, exists and is ours; nodeVersion {project.node_version} to {node}"
        entries = [_entry("project", app, "update", detail, id=project.id)]
    else:
        entries = [_entry("project", app, "none", f"{what}, exists and is ours", id=project.id)]
    for key in sorted(ENV_TYPES):
        wanted = set(targets_of(key))
        if right.get(key, set()) == wanted == targets.get(key, set()):
            entries.append(_entry("env", key, "none", "set (value not compared)"))
        elif key in targets:
            where = "+".join(targets_of(key))
            entries.append(_entry("env", key, "update", f"to {ENV_TYPES[key]} on {where} only"))
        else:
            entries.append(_entry("env", key, "create", f"{ENV_TYPES[key]}, missing"))
    if copy is not None:
        entries.append(_production_entry(ctx, project, copy))
    return entries


def _production_entry(ctx: RunContext, project: Project, copy: WorkCopy) -> dict[str, Any]:
    """Does production already serve this content (the tree recorded in the deployment's meta)?"""
    current = current_production(ctx, VercelProject(project.id, project.name, created=False))
    if current is None:
        return _entry("deployment", project.name, "create", "no production deployment yet")
    if current.meta.get("forgeTree") == copy.tree:
        return _entry("deployment", project.name, "none", f"production serves {current.id}")
    return _entry("deployment", project.name, "update", f"production serves {current.id}")


def teardown_app(ctx: RunContext, app: str) -> str:
    """Delete our project (its deployments and env go with it); refuse one that is not ours."""
    vercel = client(ctx)
    project = vercel.get_project(app)
    if project is None:
        return "absent"
    _ours(project, app)
    deleted = vercel.delete_project(project.id)
    ctx.progress(STEP, f"project {app} {'deleted' if deleted else 'already gone'}")
    return "deleted" if deleted else "absent"


__all__ = [
    "BuildFailed",
    "DeployResult",
    "VercelProject",
    "current_production",
    "deploy",
    "ensure_project",
    "plan_app",
    "production_url",
    "promote",
    "teardown_app",
    "wait_ready",
]
