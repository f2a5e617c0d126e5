"""The JSON objects Vercel answers with, built from stored records at a given instant."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sandbox.vercel import buildcheck, lifecycle
from sandbox.vercel.state import REGION, VercelState

# The `framework` values of the OpenAPI document.
_FRAMEWORK_NAMES = """
blitzjs nextjs gatsby remix react-router astro hexo eleventy docusaurus-2 docusaurus preact
solidstart-1 solidstart dojo ember vue scully ionic-angular angular polymer svelte sveltekit
sveltekit-1 ionic-react create-react-app gridsome umijs sapper saber stencil nuxtjs redwoodjs
hugo jekyll brunch middleman zola hydrogen vite vitepress vuepress parcel fastapi flask
fasthtml sanity-v3 sanity storybook nitro hono express h3 nestjs fastify xmcp
"""
FRAMEWORKS = frozenset(_FRAMEWORK_NAMES.split())
PROJECT_SETTINGS = (
    "buildCommand",
    "devCommand",
    "installCommand",
    "outputDirectory",
    "rootDirectory",
    "commandForIgnoringBuildStep",
)
SOURCES = frozenset(
    ("api-trigger-git-deploy", "cli", "clone/repo", "git", "import", "import/repo", "redeploy")
) | {"v0-web"}


# -- env vars ------------------------------------------------------------------------------
def _opaque(var: dict[str, Any]) -> str:
    """What an encrypted value looks like without `decrypt`: stable, not reversible."""
    digest = hashlib.sha256(f"{var['id']}:{var['value']}".encode()).hexdigest()[:32]
    return base64.b64encode(f'{{"v":"v2","c":"{digest}"}}'.encode()).decode()


def env_json(var: dict[str, Any], *, decrypt: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": var["id"],
        "key": var["key"],
        "type": var["type"],
        "target": list(var["target"]),
        "configurationId": None,
        "createdAt": var["createdAt"],
        "updatedAt": var["updatedAt"],
        "createdBy": var.get("createdBy"),
        "updatedBy": var.get("updatedBy"),
        "customEnvironmentIds": [],
    }
    if var.get("gitBranch"):
        out["gitBranch"] = var["gitBranch"]
    if var.get("comment"):
        out["comment"] = var["comment"]
    if var["type"] == "sensitive":
        out["value"] = ""
        out["decrypted"] = False
    elif var["type"] in ("plain", "system"):
        out["value"] = var["value"]
    elif decrypt:
        out["value"] = var["value"]
        out["decrypted"] = True
    else:
        out["value"] = _opaque(var)
        out["decrypted"] = False
    return out


# -- deployments ---------------------------------------------------------------------------
def _aliases_of(state: VercelState, deployment: dict[str, Any], now: int) -> list[str]:
    project = state.projects.get(deployment["projectId"])
    aliases: list[str] = []
    if project is not None and lifecycle.has_held_production(
        deployment, project, state.project_deployments(project["id"]), now
    ):
        aliases.append(state.production_alias(project["name"]))
    aliases += [a["alias"] for a in state.aliases.values() if a["deploymentId"] == deployment["id"]]
    return aliases


def settings_json(settings: dict[str, Any]) -> dict[str, Any]:
    out = {key: settings.get(key) for key in PROJECT_SETTINGS if key != "rootDirectory"}
    framework = settings.get("framework")
    if framework in FRAMEWORKS:  # the document's enum has no null: omit rather than null
        out["framework"] = framework
    return out


def deployment_json(state: VercelState, deployment: dict[str, Any], now: int) -> dict[str, Any]:
    project = state.projects.get(deployment["projectId"], {"id": deployment["projectId"]})
    siblings = state.project_deployments(deployment["projectId"])
    ready_state = lifecycle.ready_state(deployment, now)
    assigned = lifecycle.alias_assigned(deployment, now)
    team = state.team_json()
    out: dict[str, Any] = {
        "id": deployment["id"],
        "name": deployment["name"],
        "url": deployment["url"],
        "projectId": deployment["projectId"],
        "project": {"id": deployment["projectId"], "name": deployment["name"]},
        "ownerId": state.team_id,
        "team": {"id": team["id"], "name": team["name"], "slug": team["slug"]},
        "creator": state.creator_json(),
        "createdAt": deployment["createdAt"],
        "createdIn": REGION,
        "bootedAt": deployment["createdAt"],
        "buildingAt": deployment["buildingAt"],
        "readyState": ready_state,
        "status": ready_state,
        "alias": _aliases_of(state, deployment, now),
        "aliasAssigned": assigned,
        "aliasError": None,
        "autoAssignCustomDomains": deployment.get("autoAssignCustomDomains", True),
        "inspectorUrl": state.inspector_url(deployment["id"]),
        "isInConcurrentBuildsQueue": False,
        "isInSystemBuildsQueue": False,
        "projectSettings": settings_json(deployment.get("projectSettings") or {}),
        "build": {"env": sorted(deployment.get("buildEnvKeys", []))},
        "env": sorted(deployment.get("envKeys", [])),
        "meta": deployment.get("meta", {}),
        "public": False,
        "type": "LAMBDAS",
        "regions": [REGION],
        "version": 2,
        "plan": "hobby",
        "routes": None,
        "buildSkipped": False,
        "source": deployment.get("source", "cli"),
    }
    if deployment.get("target"):  # previews omit it (the enum has no null)
        out["target"] = deployment["target"]
    substate = lifecycle.ready_substate(deployment, project, siblings, now)
    if substate:
        out["readySubstate"] = substate
    if ready_state == "READY":
        out["ready"] = deployment["readyAt"]
        out["readyAt"] = deployment["readyAt"]
    if assigned:
        out["aliasAssignedAt"] = deployment["aliasAt"]
    if ready_state == "CANCELED":
        out["canceledAt"] = deployment["canceledAt"]
    if ready_state == "ERROR":
        out.update(buildcheck.error_fields(deployment))
    return out


def deployment_list_item(
    state: VercelState, deployment: dict[str, Any], now: int
) -> dict[str, Any]:
    full = deployment_json(state, deployment, now)
    item = {
        "uid": full["id"],
        "name": full["name"],
        "projectId": full["projectId"],
        "url": full["url"],
        "created": full["createdAt"],
        "createdAt": full["createdAt"],
        "buildingAt": full["buildingAt"],
        "state": full["readyState"],
        "readyState": full["readyState"],
        "type": "LAMBDAS",
        "creator": full["creator"],
        "inspectorUrl": full["inspectorUrl"],
        "meta": full["meta"],
        "aliasAssigned": full["aliasAssigned"],
        "aliasError": None,
        "source": full["source"],
        "projectSettings": full["projectSettings"],
    }
    for key in ("ready", "readySubstate", "canceledAt", "target"):
        if key in full:
            item[key] = full[key]
    return item


def deployment_summary(state: VercelState, deployment: dict[str, Any], now: int) -> dict[str, Any]:
    """The short form inside a project (`targets.production`, `latestDeployments`)."""
    full = deployment_json(state, deployment, now)
    out = {
        key: full[key]
        for key in (
            "id",
            "alias",
            "aliasAssigned",
            "aliasError",
            "buildingAt",
            "createdAt",
            "createdIn",
            "creator",
            "meta",
            "name",
            "plan",
            "readyState",
            "type",
            "url",
        )
    }
    out["target"] = full.get("target")
    out.update(
        {
            "deploymentHostname": deployment["slug"],
            "private": True,
            "userId": state.user_id,
            "teamId": state.team_id,
        }
    )
    for key in ("readyAt", "readySubstate"):
        if key in full:
            out[key] = full[key]
    return out


# -- projects ------------------------------------------------------------------------------
def project_json(state: VercelState, project: dict[str, Any], now: int) -> dict[str, Any]:
    deployments = sorted(
        state.project_deployments(project["id"]), key=lambda d: d["createdAt"], reverse=True
    )
    out: dict[str, Any] = {
        "accountId": state.team_id,
        "id": project["id"],
        "name": project["name"],
        "createdAt": project["createdAt"],
        "updatedAt": project["updatedAt"],
        "directoryListing": False,
        "nodeVersion": project.get("nodeVersion", "24.x"),
        "ssoProtection": project.get("ssoProtection"),
        "protectionBypass": project.get("protectionBypass", {}),
        "resourceConfig": {"functionDefaultRegions": [REGION]},
        "defaultResourceConfig": {"functionDefaultRegions": [REGION]},
        "autoAssignCustomDomains": True,
        "live": False,
        "env": [env_json(var, decrypt=False) for var in project.get("env", [])],
        "latestDeployments": [deployment_summary(state, d, now) for d in deployments[:5]],
        "targets": {},
    }
    for key in PROJECT_SETTINGS:
        out[key] = project.get(key)
    if project.get("framework"):  # the document's enum has no null: omit rather than null
        out["framework"] = project["framework"]
    production = lifecycle.current_production(project, deployments, now)
    if production is not None:
        out["targets"]["production"] = deployment_summary(state, production, now)
    requests = project.get("aliasRequests", [])
    if requests:
        last = requests[-1]
        out["lastAliasRequest"] = {
            "type": last["type"],
            "fromDeploymentId": last["fromDeploymentId"],
            "toDeploymentId": last["toDeploymentId"],
            "requestedAt": last["requestedAt"],
            "jobStatus": lifecycle.alias_request_status(last, now),
        }
    else:
        out["lastAliasRequest"] = None
    return out
