"""The Vercel project settings forge-deploy decides: its Node.js version and its protection.

`nodeVersion` is set explicitly (`vercel_node`), with `PATCH /v9/projects/{id}` right after the
create and on every adopt (the create takes none). Deployment protection is set once, at the
create: Standard protection (`ssoProtection {deploymentType: "preview"}`: production public,
previews behind Vercel login), since the default of new projects has changed over time. An
adopted project's protection stays as its owner set it; what it means for the health check is
read here (`login_wall`): whether production sits behind Vercel login, and the project's
automation bypass secret, which is registered with the masker before anything can print it.
"""

from __future__ import annotations

from runner.context import RunContext
from runner.providers.vercel import Project, VercelClient
from runner.steps.health_wall import Wall

STEP = "vercel"
PROTECTION = "preview"
# deploymentTypes that put the production domain behind Vercel login
PRODUCTION_PROTECTED = ("all", "all_except_custom_domains")


def ensure_node(ctx: RunContext, vercel: VercelClient, project: Project, node: str) -> Project:
    if project.node_version == node:
        return project
    updated = vercel.update_project(project.id, {"nodeVersion": node})
    ctx.progress(
        STEP,
        f"project {project.name} builds on Node.js {node} (was {project.node_version})",
        node_version=node,
    )
    return updated


def login_wall(ctx: RunContext, project_id: str) -> Wall:
    """How the project's production URL is protected, with its bypass secret if it has one."""
    project = VercelClient(ctx.vercel).get_project(project_id)
    if project is None:
        return Wall(None, None)
    for secret in project.bypass_secrets:
        ctx.masker.register(secret)
    bypass = project.bypass_secrets[0] if project.bypass_secrets else None
    protected = project.protection in PRODUCTION_PROTECTED
    return Wall(project.protection if protected else None, bypass)
