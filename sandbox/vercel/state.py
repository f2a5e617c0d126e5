"""The Vercel emulator's durable state: one JSON document (projects with their env vars and
alias requests, deployments, custom aliases) plus content-addressed files on disk.

Every status is computed from timestamps stored here (see `lifecycle`), so a restarted sandbox
answers exactly as the one that stopped would have.
"""

from __future__ import annotations

import re
import secrets
import string
from pathlib import Path
from typing import Any

from sandbox.context import Context
from sandbox.store import JsonStore
from sandbox.vercel.errors import VercelError, not_found
from sandbox.vercel.files import FileStore
from sandbox.vercel.lifecycle import current_production
from sandbox.vercel.ratelimit import RateLimiter

_ALNUM = string.ascii_letters + string.digits
_LOWER = string.ascii_lowercase + string.digits
PROJECT_NAME = re.compile(r"^[a-z0-9._-]{1,100}$")
REGION = "iad1"


def new_id(prefix: str, length: int = 24, alphabet: str = _ALNUM) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def lower_token(length: int) -> str:
    return "".join(secrets.choice(_LOWER) for _ in range(length))


def check_project_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise VercelError(400, "Invalid request: missing required property `name`", "bad_request")
    if not PROJECT_NAME.match(name) or "---" in name:
        raise VercelError(
            400,
            "Project names can be up to 100 characters long and must be lowercase. They can "
            "include letters, digits, and the following characters: '.', '_', '-'. However, "
            "they cannot contain the sequence '---'.",
            "bad_request",
        )
    return name


class VercelState:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        root = ctx.service_dir("vercel")
        self.store = JsonStore(
            root / "state.json",
            {
                "createdAt": self.now_ms(),
                "projects": {},
                "deployments": {},
                "aliases": {},
            },
        )
        self.files = FileStore(root / "files")
        self.limiter = RateLimiter(ctx.clock.now)

    # -- time ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.ctx.clock.now() * 1000)

    def delay_ms(self, name: str) -> int:
        return int(self.ctx.clock.delay(name) * 1000)

    # -- identity --------------------------------------------------------------------------
    @property
    def team_id(self) -> str:
        return self.ctx.identity.vercel_team_id

    @property
    def user_id(self) -> str:
        return self.ctx.identity.vercel_user_id

    def team_json(self) -> dict[str, Any]:
        created = int(self.store.data["createdAt"])
        ident = self.ctx.identity
        return {
            "id": ident.vercel_team_id,
            "slug": ident.vercel_team_slug,
            "name": "Forge Apps",
            "avatar": None,
            "creatorId": ident.vercel_user_id,
            "createdAt": created,
            "updatedAt": created,
            "description": None,
            "stagingPrefix": ident.vercel_team_slug,
            "membership": {
                "confirmed": True,
                "role": "OWNER",
                "uid": ident.vercel_user_id,
                "createdAt": created,
                "created": created,
            },
        }

    def user_json(self) -> dict[str, Any]:
        ident = self.ctx.identity
        return {
            "id": ident.vercel_user_id,
            "email": self.creator_json()["email"],
            "name": "Forge Bot",
            "username": ident.vercel_username,
            "avatar": None,
            "defaultTeamId": ident.vercel_team_id,
            "version": "northstar",
            "createdAt": int(self.store.data["createdAt"]),
            "softBlock": None,
            "billing": None,
            "resourceConfig": {},
            "stagingPrefix": ident.vercel_username,
            "hasTrialAvailable": False,
        }

    def creator_json(self) -> dict[str, Any]:
        username = self.ctx.identity.vercel_username
        return {
            "uid": self.user_id,
            "username": username,
            "email": f"{username}@forge-sandbox.invalid",
        }

    # -- lookups ---------------------------------------------------------------------------
    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        projects: dict[str, dict[str, Any]] = self.store.data["projects"]
        return projects

    @property
    def deployments(self) -> dict[str, dict[str, Any]]:
        deployments: dict[str, dict[str, Any]] = self.store.data["deployments"]
        return deployments

    @property
    def aliases(self) -> dict[str, dict[str, Any]]:
        aliases: dict[str, dict[str, Any]] = self.store.data["aliases"]
        return aliases

    def find_project(self, id_or_name: str) -> dict[str, Any] | None:
        if id_or_name in self.projects:
            return self.projects[id_or_name]
        for project in self.projects.values():
            if project["name"] == id_or_name:
                return project
        return None

    def project(self, id_or_name: str) -> dict[str, Any]:
        project = self.find_project(id_or_name)
        if project is None:
            raise VercelError(404, "Project not found", "not_found")
        return project

    def project_deployments(self, project_id: str) -> list[dict[str, Any]]:
        return [d for d in self.deployments.values() if d["projectId"] == project_id]

    def deployment_url(self, slug: str) -> str:
        return f"{self.ctx.urls.apps_hostport}/d/{slug}"

    def production_alias(self, project_name: str) -> str:
        return f"{self.ctx.urls.apps_hostport}/p/{project_name}"

    def inspector_url(self, deployment_id: str) -> str:
        return f"{self.ctx.urls.apps}/_vercel/inspect/{deployment_id}"

    def find_deployment(self, id_or_url: str) -> dict[str, Any] | None:
        """By id, by url (with or without scheme), by slug, or by a production alias."""
        key = id_or_url.strip()
        if key in self.deployments:
            return self.deployments[key]
        for prefix in ("https://", "http://"):
            key = key.removeprefix(prefix)
        key = key.rstrip("/")
        for deployment in self.deployments.values():
            if key in (deployment["url"], deployment["slug"]):
                return deployment
        if key in self.aliases:
            return self.deployments.get(self.aliases[key]["deploymentId"])
        for project in self.projects.values():
            if key == self.production_alias(project["name"]):
                return current_production(
                    project, self.project_deployments(project["id"]), self.now_ms()
                )
        return None

    def deployment(self, id_or_url: str) -> dict[str, Any]:
        deployment = self.find_deployment(id_or_url)
        if deployment is None:
            raise not_found("Deployment")
        return deployment

    def file_path(self, sha: str) -> Path:
        return self.files.path(sha)
