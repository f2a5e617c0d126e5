"""The Supabase steps: ensure the project (restoring it if it was paused), wait until it is
healthy, plan, remove. The keys are `supabase_keys`'s, the auth URLs `supabase_auth`'s.

**Our marker is the name.** Supabase projects carry no tags or description, so a project is
forge-deploy's when it is named `forge-<app>` and lives in `SUPABASE_ORG_ID`'s organization.
The API allows duplicate names; should several exist (a create whose answer was lost, made
twice by an older runner), the oldest is adopted and a warning logged.

**The database password** is generated here (`secrets.token_urlsafe(32)`, 43 characters),
registered with the masker before anything else, and sealed to `FORGE_SEAL_PUBLIC_KEY` into the
checkpoint `supabase.db_password_sealed` *before* the create request is sent, so a run killed
while the create is in flight can still resume (a sealed password for a create that never
happened is harmless: the next run creates again and seals its own). Adopting a project, the
password comes back from that checkpoint opened with `FORGE_SEAL_PRIVATE_KEY`; without both it
is unknown (None), and a later migration says so.

**A paused project** (`INACTIVE`: free projects pause after about a week idle) is restored when
it is adopted, once: the restore is requested only while the project still reads INACTIVE, so
a run killed after asking (its answer lost or not) finds it RESTORING and just waits.

Checkpoints: `supabase.ref`, `supabase.db_password_sealed`, `supabase.url`. Never the keys.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.checkpoints import SEALED_DB_PASSWORD
from runner.context import RunContext
from runner.ensure import ensure
from runner.errors import StepFailed
from runner.migrations import local_migrations
from runner.providers.supabase import Project, ServiceHealth, SupabaseClient
from runner.sealing import seal, unseal

log = logging.getLogger("forge.runner.database")

STEP = "supabase"
NAME_PREFIX = "forge-"
PASSWORD_BYTES = 32  # token_urlsafe(32): 43 characters
CHECKPOINT_REF = "supabase.ref"
CHECKPOINT_URL = "supabase.url"

HEALTHY = "ACTIVE_HEALTHY"
PAUSED = "INACTIVE"
# Statuses a project does not leave by itself: waiting longer cannot help (a paused project is
# restored when it is adopted; paused again while we wait, it is not ours to fight over).
TERMINAL = frozenset(
    {
        "INIT_FAILED",
        "REMOVED",
        "RESTORE_FAILED",
        "PAUSE_FAILED",
        PAUSED,
        "GOING_DOWN",
        "PAUSING",
    }
)
# Still provisioning: a delete must wait ("Project not ready for deletion.").
PROVISIONING = frozenset(
    {"UNKNOWN", "COMING_UP", "RESTORING", "RESTARTING", "UPGRADING", "RESIZING"}
)
HEALTH_SERVICES = ("db", "rest")


@dataclass(frozen=True)
class DatabaseProject:
    ref: str
    name: str
    created: bool
    password: str | None = field(default=None, repr=False)


def project_name(app: str) -> str:
    return f"{NAME_PREFIX}{app}"


def _client(ctx: RunContext) -> SupabaseClient:
    return SupabaseClient(ctx.supabase)


def find_projects(ctx: RunContext, app: str) -> list[Project]:
    """Every project of ours for `app` (name and organization), oldest first."""
    name, org = project_name(app), ctx.settings.supabase.org_id
    mine = [
        p for p in _client(ctx).list_projects() if p.name == name and p.organization_slug == org
    ]
    return sorted(mine, key=lambda p: p.created_sort_key)


def _seal_password(ctx: RunContext, password: str) -> None:
    public_key = ctx.settings.run.seal_public_key
    if public_key is None:
        log.warning(
            "FORGE_SEAL_PUBLIC_KEY is not set: the database password cannot survive a resume"
        )
        return
    ctx.checkpoints.put(SEALED_DB_PASSWORD, seal(public_key, password))


def _recover_password(ctx: RunContext, ref: str) -> str | None:
    sealed = ctx.checkpoints.get(SEALED_DB_PASSWORD)
    private_key = ctx.settings.run.seal_private_key
    if not isinstance(sealed, str) or private_key is None:
        log.warning(
            "adopting project %s without its database password (%s)",
            ref,
            "no sealed checkpoint" if private_key else "FORGE_SEAL_PRIVATE_KEY is not set",
        )
        return None
    password = unseal(private_key, sealed)
    ctx.masker.register(password)
    return password


def ensure_project(ctx: RunContext, app: str) -> DatabaseProject:
    """Adopt `forge-<app>` in our organization, or create it; exactly one, even when a create's
    answer is lost (the next look finds the project that create made)."""
    client = _client(ctx)
    settings = ctx.settings.supabase
    name = project_name(app)
    generated: list[str] = []  # the password of this run's create, kept across create rounds

    def find() -> Project | None:
        mine = find_projects(ctx, app)
        if len(mine) > 1:
            log.warning(
                "%d Supabase projects are named %s; adopting the oldest, %s (others: %s)",
                len(mine),
                name,
                mine[0].ref,
                ", ".join(p.ref for p in mine[1:]),
            )
        return mine[0] if mine else None

    def create() -> Project:
        if not generated:
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            ctx.masker.register(password)
            generated.append(password)
            _seal_password(ctx, password)  # before the request: it may succeed unanswered
        ctx.progress(STEP, f"creating Supabase project {name}", region=settings.region)
        project = client.create_project(name, settings.org_id, settings.region, generated[0])
        ctx.checkpoints.put(CHECKPOINT_REF, project.ref)
        return project

    project, created = ensure(
        f"Supabase project {name}", find, create, ctx.policy, ctx.wait, ctx.settle
    )
    ctx.checkpoints.put(CHECKPOINT_REF, project.ref)
    if created and generated:
        password: str | None = generated[0]
        ctx.progress(STEP, f"created Supabase project {name}", ref=project.ref)
    else:
        password = _recover_password(ctx, project.ref)
        ctx.progress(STEP, f"adopted Supabase project {name}", ref=project.ref)
        if project.status == PAUSED:
            restore(ctx, project.ref)
    return DatabaseProject(project.ref, name, created, password)


def restore(ctx: RunContext, ref: str) -> None:
    """Un-pause the project: one restore request, only while it still reads INACTIVE (a lost
    answer is looked at again, never repeated blindly); `wait_healthy` then waits through
    RESTORING."""
    client = _client(ctx)

    def find() -> Project | None:
        current = client.get_project(ref)
        if current is None:
            raise StepFailed(STEP, f"Supabase project {ref} no longer exists")
        return None if current.status == PAUSED else current

    def request() -> Project:
        ctx.progress(STEP, f"Supabase project {ref} is paused: restoring it", ref=ref)
        client.restore_project(ref)
        return Project(ref, "", "", "", "RESTORING", "")

    _, requested = ensure(
        f"restore of Supabase project {ref}", find, request, ctx.policy, ctx.wait, ctx.settle
    )
    if requested:
        ctx.progress(STEP, f"restore of Supabase project {ref} requested", ref=ref)


@dataclass(frozen=True)
class Healthy:
    project: Project
    schemas: tuple[str, ...]  # what the Data API exposes (the rest service's `db_schema`)


def exposed_schemas(services: list[ServiceHealth]) -> tuple[str, ...]:
    """The schemas the rest service says it exposes (`public` when it does not say)."""
    for service in services:
        if service.name == "rest" and service.db_schema:
            found = tuple(s.strip() for s in service.db_schema.split(",") if s.strip())
            if found:
                return found
    return ("public",)


def wait_healthy(ctx: RunContext, ref: str) -> Healthy:
    """Poll until the project is ACTIVE_HEALTHY (and its db and rest services say so) within
    `FORGE_SUPABASE_DEADLINE_S` (a restore waits here too); a status it cannot leave by itself
    fails at once."""
    client = _client(ctx)
    last: list[str] = []

    def probe() -> Healthy | None:
        project = client.get_project(ref)
        if project is None:
            raise StepFailed(STEP, f"Supabase project {ref} no longer exists")
        if not last or last[-1] != project.status:
            last.append(project.status)
            ctx.progress(STEP, f"project status {project.status}", ref=ref, status=project.status)
        if project.status in TERMINAL:
            raise StepFailed(
                STEP, f"Supabase project {ref} is {project.status}: it will not become healthy"
            )
        if project.status != HEALTHY:
            return None
        services = client.health(ref, HEALTH_SERVICES)
        if not all(s.status == HEALTHY for s in services):
            return None
        return Healthy(project, exposed_schemas(services))

    deadline = ctx.settings.run.supabase_deadline_s
    try:
        healthy: Healthy = ctx.poll(STEP, f"Supabase project {ref}", probe, deadline)
    except TimeoutError as e:
        seen = " → ".join(last) or "no answer"
        raise StepFailed(
            STEP, f"Supabase project {ref} not {HEALTHY} after {deadline:.0f} s (seen: {seen})"
        ) from e
    return healthy


def project_url(ctx: RunContext, ref: str) -> str:
    url = ctx.settings.supabase.project_url.replace("{ref}", ref)
    ctx.checkpoints.put(CHECKPOINT_URL, url)
    return url


def plan_database(ctx: RunContext, app: str, build_dir: Path) -> list[dict[str, Any]]:
    """What deploy would do to the database, read-only: the project, then each migration."""
    name = project_name(app)
    local = local_migrations(build_dir)
    mine = find_projects(ctx, app)
    changes: list[dict[str, Any]] = []
    if not mine:
        changes.append({"resource": "supabase.project", "name": name, "action": "create"})
        changes += [
            {"resource": "supabase.migration", "name": m.file, "action": "apply"} for m in local
        ]
        return changes
    project = mine[0]
    action = "restore" if project.status == PAUSED else "none"  # a paused project comes back
    changes.append(
        {
            "resource": "supabase.project",
            "name": name,
            "action": action,
            "ref": project.ref,
            "status": project.status,
        }
    )
    if not local:
        return changes
    if project.status != HEALTHY:
        changes.append(
            {
                "resource": "supabase.migration",
                "name": "*",
                "action": "unknown",
                "reason": f"project is {project.status}",
            }
        )
        return changes
    applied = {m.version for m in _client(ctx).list_migrations(project.ref)}
    changes += [
        {"resource": "supabase.migration", "name": m.file, "action": "apply"}
        for m in local
        if m.version not in applied
    ]
    return changes


def teardown_database(ctx: RunContext, app: str) -> str:
    """Delete every project of ours for `app` ("deleted"), or say there was none ("absent").
    A project still provisioning cannot be deleted yet: wait for it first."""
    client = _client(ctx)
    mine = find_projects(ctx, app)
    if not mine:
        return "absent"
    for project in mine:
        if project.status in PROVISIONING:

            def settled(ref: str = project.ref) -> bool | None:
                current = client.get_project(ref)
                return True if current is None or current.status not in PROVISIONING else None

            ctx.poll(
                STEP,
                f"Supabase project {project.ref}",
                settled,
                ctx.settings.run.supabase_deadline_s,
            )
        client.delete_project(project.ref)
        ctx.progress(STEP, f"deleted Supabase project {project.name}", ref=project.ref)
    return "deleted"
