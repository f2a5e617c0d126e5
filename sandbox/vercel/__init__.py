"""The Vercel emulator: REST API on the vercel port, deployments served on the apps server.

See `state` (durable records), `lifecycle` (statuses from timestamps), `deploy` and
`deployments` (the deployment API), `serving` (HTTPS on the apps server).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.context import Context, Service
from sandbox.vercel import lifecycle, serving, today
from sandbox.vercel.admin import admin_routes
from sandbox.vercel.app import build_app
from sandbox.vercel.errors import error_body
from sandbox.vercel.state import VercelState


def inventory(state: VercelState) -> dict[str, Any]:
    """Everything that exists, for `forge-sandbox resources` (sensitive values never shown, only
    their SHA-256)."""
    now = state.now_ms()
    env: list[dict[str, Any]] = []
    for project in state.projects.values():
        for var in project.get("env", []):
            item = {
                "project": project["name"],
                "id": var["id"],
                "key": var["key"],
                "target": list(var["target"]),
                "type": var["type"],
            }
            if var["type"] != "sensitive":
                item["value"] = var["value"]
            else:  # never the value: its digest, so a test can tell which key a variable holds
                item["value_sha256"] = hashlib.sha256(var["value"].encode()).hexdigest()
            env.append(item)
    deployments = [
        {
            "id": d["id"],
            "project": d["name"],
            "projectId": d["projectId"],
            "url": d["url"],
            "readyState": lifecycle.ready_state(d, now),
            "target": d.get("target"),
            "aliasAssigned": lifecycle.alias_assigned(d, now),
            "files": len(d["files"]),
            "missingEnv": list(d.get("missingEnv", [])),
        }
        for d in sorted(state.deployments.values(), key=lambda d: d["createdAt"])
    ]
    aliases: list[dict[str, Any]] = []
    for project in state.projects.values():
        current = lifecycle.current_production(
            project, state.project_deployments(project["id"]), now
        )
        if current is not None:
            aliases.append(
                {
                    "alias": state.production_alias(project["name"]),
                    "deploymentId": current["id"],
                    "production": True,
                }
            )
    aliases += [
        {"alias": a["alias"], "deploymentId": a["deploymentId"], "production": False}
        for a in state.aliases.values()
    ]
    return {
        "team": {"id": state.team_id, "slug": state.ctx.identity.vercel_team_slug},
        "projects": [{"id": p["id"], "name": p["name"]} for p in state.projects.values()],
        "settings": {
            p["name"]: {
                "defaults": today.of(p),
                "nodeVersion": p.get("nodeVersion"),
                "ssoProtection": p.get("ssoProtection"),
            }
            for p in state.projects.values()
        },
        "env": env,
        "deployments": deployments,
        "aliases": aliases,
    }


def build(ctx: Context) -> Service:
    state = VercelState(ctx)
    return Service(
        name="vercel",
        app=build_app(state),
        error_body=error_body,
        resources=lambda: inventory(state),
        apps_routes=[*admin_routes(state), *serving.routes(state)],
    )
