"""Vercel's REST API, the part a deploy needs: projects, env vars, files, deployments, promote.

Every call goes through `ProviderHttp` (which adds `teamId`, maps statuses to errors, retries
transient failures). Creates are `idempotent=False`: a lost answer surfaces as `AmbiguousError`
for the step to resolve by looking. Answers that are "successful" but carry a failure are turned
into errors here: an env upsert whose `failed` list is not empty, a deployment create that
answers 400 `missing_files` (`MissingFiles`, carrying the shas to upload), a promote refused
because another one is in progress (`PromotionConflict`, retryable).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from runner.ensure import AlreadyExists
from runner.errors import FatalError, ProviderError, RetryableError
from runner.http import ProviderHttp, classify, provider_message

PROVIDER = "vercel"
MARKER_KEY = "FORGE_DEPLOY_APP"  # plain env var set at create: "this project is forge-deploy's"
FAILED_STATES = ("ERROR", "CANCELED")


class MissingFiles(FatalError):
    """`POST /v13/deployments` named files by sha that were never uploaded."""

    def __init__(self, missing: Sequence[str], message: str) -> None:
        super().__init__(PROVIDER, 400, message)
        self.missing = tuple(missing)


class PromotionConflict(RetryableError):
    """409 on promote: another promotion or rollback of the project is still in progress."""

    def __init__(self, message: str) -> None:
        super().__init__(PROVIDER, 409, message, delay=None)


@dataclass(frozen=True)
class EnvItem:
    """One env var to write. `value` is a secret for the caller's masker, never in a repr."""

    key: str
    value: str = field(repr=False)
    type: str  # plain | encrypted | sensitive
    targets: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "type": self.type, "target": [*self.targets]}


@dataclass(frozen=True)
class EnvVar:
    id: str
    key: str
    type: str
    targets: tuple[str, ...]
    value: str | None = field(repr=False)  # None unless readable (plain, or decrypted)
    git_branch: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> EnvVar:
        raw_target = body.get("target") or []
        targets = (raw_target,) if isinstance(raw_target, str) else tuple(raw_target)
        readable = body.get("type") in ("plain", "system") or body.get("decrypted") is True
        value = body.get("value")
        return cls(
            id=str(body.get("id", "")),
            key=str(body["key"]),
            type=str(body.get("type", "")),
            targets=tuple(str(t) for t in targets),
            value=str(value) if readable and isinstance(value, str) else None,
            git_branch=body.get("gitBranch") or None,
        )


@dataclass(frozen=True)
class AliasRequest:
    """The project's last promote/rollback: where it points and whether it is done."""

    type: str
    to_deployment_id: str
    job_status: str  # in-progress | succeeded | failed


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    marker: str | None  # the value of our plain FORGE_DEPLOY_APP env var, if present
    env: tuple[EnvVar, ...]
    production_deployment_id: str | None
    last_alias_request: AliasRequest | None
    node_version: str | None = None
    protection: str | None = None  # ssoProtection.deploymentType; None: no Vercel login
    bypass_secrets: tuple[str, ...] = field(default=(), repr=False)  # automation bypass

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Project:
        env = tuple(EnvVar.from_json(v) for v in body.get("env") or [] if isinstance(v, dict))
        sso = body.get("ssoProtection")
        bypass = body.get("protectionBypass")
        secrets = tuple(
            str(secret)
            for secret, about in (bypass.items() if isinstance(bypass, dict) else ())
            if isinstance(about, dict) and about.get("scope") == "automation-bypass"
        )
        marker = next((v.value for v in env if v.key == MARKER_KEY and v.type == "plain"), None)
        production = (body.get("targets") or {}).get("production") or {}
        last = body.get("lastAliasRequest")
        request = (
            AliasRequest(
                type=str(last.get("type", "")),
                to_deployment_id=str(last.get("toDeploymentId", "")),
                job_status=str(last.get("jobStatus", "")),
            )
            if isinstance(last, dict)
            else None
        )
        return cls(
            id=str(body["id"]),
            name=str(body["name"]),
            marker=marker,
            env=env,
            production_deployment_id=production.get("id") if isinstance(production, dict) else None,
            last_alias_request=request,
            node_version=str(body["nodeVersion"]) if body.get("nodeVersion") else None,
            protection=str(sso.get("deploymentType")) if isinstance(sso, dict) else None,
            bypass_secrets=secrets,
        )


@dataclass(frozen=True)
class Deployment:
    id: str
    url: str  # host (and path, in the sandbox) without scheme
    ready_state: str
    ready_substate: str | None  # STAGED | PROMOTED for production builds
    alias: tuple[str, ...]
    alias_assigned: bool
    error_code: str | None
    error_message: str | None
    target: str | None
    project_id: str | None
    auto_assign_custom_domains: bool
    meta: dict[str, str] = field(default_factory=dict)
    created_at: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Deployment:
        """From `GET /v13/deployments/{id}` or an item of `GET /v7/deployments`."""
        meta = body.get("meta") or {}
        return cls(
            id=str(body.get("id") or body["uid"]),
            url=str(body.get("url") or ""),
            ready_state=str(body.get("readyState") or body.get("state") or "QUEUED"),
            ready_substate=body.get("readySubstate"),
            alias=tuple(str(a) for a in body.get("alias") or ()),
            alias_assigned=bool(body.get("aliasAssigned")),
            error_code=body.get("errorCode"),
            error_message=body.get("errorMessage"),
            target=body.get("target"),
            project_id=body.get("projectId"),
            auto_assign_custom_domains=bool(body.get("autoAssignCustomDomains", True)),
            meta={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
            created_at=int(body.get("createdAt") or body.get("created") or 0),
        )


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _path(value: str) -> str:
    return quote(value, safe="")


class VercelClient:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    def _raise_for(self, response: requests.Response, idempotent: bool = True) -> None:
        error: ProviderError | None = classify(PROVIDER, response, self.http.clock(), idempotent)
        if error is not None:
            raise error

    # -- projects --------------------------------------------------------------------------
    def get_project(self, id_or_name: str) -> Project | None:
        response = self.http.request("GET", f"/v9/projects/{_path(id_or_name)}", accept=(404,))
        return None if response.status_code == 404 else Project.from_json(response.json())

    def create_project(
        self, name: str, environment_variables: Sequence[EnvItem], protection: str | None
    ) -> Project:
        """409 (name taken, maybe by our own lost create) → `AlreadyExists`: look again.
        `protection`: the `ssoProtection.deploymentType` to set (None: no Vercel login)."""
        response = self.http.request(
            "POST",
            "/v11/projects",
            idempotent=False,
            accept=(409,),
            json={
                "name": name,
                "environmentVariables": [v.to_json() for v in environment_variables],
                "ssoProtection": None if protection is None else {"deploymentType": protection},
            },
        )
        if response.status_code == 409:
            raise AlreadyExists(PROVIDER, provider_message(PROVIDER, response))
        return Project.from_json(response.json())

    def update_project(self, project_id: str, fields: dict[str, Any]) -> Project:
        """`PATCH /v9/projects/{id}` (e.g. `nodeVersion`, which the create does not take)."""
        body = self.http.json("PATCH", f"/v9/projects/{_path(project_id)}", json=fields)
        return Project.from_json(body)

    def delete_project(self, project_id: str) -> bool:
        """True when deleted, False when it was already gone."""
        response = self.http.request("DELETE", f"/v9/projects/{_path(project_id)}", accept=(404,))
        return response.status_code != 404

    def list_domains(self, project_id: str) -> list[str]:
        """The project's verified domains that serve production (no redirect, no git branch)."""
        body = self.http.json("GET", f"/v9/projects/{_path(project_id)}/domains")
        return [
            str(d["name"])
            for d in body.get("domains") or []
            if isinstance(d, dict)
            and d.get("verified", True)
            and not d.get("redirect")
            and not d.get("gitBranch")
        ]

    # -- env vars --------------------------------------------------------------------------
    def list_env(self, project_id: str, decrypt: bool = False) -> list[EnvVar]:
        params = {"decrypt": "true"} if decrypt else {}
        body = self.http.json("GET", f"/v10/projects/{_path(project_id)}/env", params=params)
        return [EnvVar.from_json(v) for v in body.get("envs") or [] if isinstance(v, dict)]

    def upsert_env(
        self, project_id: str, items: Sequence[EnvItem], *, upsert: bool = True
    ) -> list[EnvVar]:
        """Write `items` in one call and check every result: a key reported in `failed`, or not
        confirmed in `created`, is a `FatalError` naming the key and the provider's code."""
        if not items:
            return []
        response = self.http.request(
            "POST",
            f"/v10/projects/{_path(project_id)}/env",
            params={"upsert": "true"} if upsert else {},
            json=[item.to_json() for item in items],
        )
        body = response.json()
        problems: list[str] = []
        failed_keys: set[str] = set()
        for entry in body.get("failed") or []:
            error = entry.get("error") if isinstance(entry, dict) else None
            error = error if isinstance(error, dict) else {}
            key = str(error.get("key", "?"))
            failed_keys.add(key)
            problems.append(
                f"{key}: {error.get('code', 'unknown')} ({error.get('message', 'no message')})"
            )
        created_raw = body.get("created")
        created_list = created_raw if isinstance(created_raw, list) else [created_raw]
        created = [EnvVar.from_json(v) for v in created_list if isinstance(v, dict)]
        confirmed = {v.key for v in created}
        for item in items:
            if item.key not in confirmed and item.key not in failed_keys:
                problems.append(f"{item.key}: not confirmed by the answer")
        if problems:
            raise FatalError(
                PROVIDER,
                response.status_code,
                "environment variables not written: " + "; ".join(problems),
            )
        return created

    def retarget_env(self, project_id: str, env_id: str, targets: Sequence[str]) -> None:
        """Narrow one variable to `targets` (its value and type stay)."""
        self.http.request(
            "PATCH",
            f"/v9/projects/{_path(project_id)}/env/{_path(env_id)}",
            json={"target": [*targets]},
        )

    def delete_env(self, project_id: str, env_id: str) -> None:
        """Idempotent: a variable already gone is fine."""
        self.http.request(
            "DELETE", f"/v9/projects/{_path(project_id)}/env/{_path(env_id)}", accept=(404,)
        )

    # -- files and deployments -------------------------------------------------------------
    def upload_file(self, sha1: str, data: bytes) -> None:
        """Content-addressed, so retrying is safe (idempotent)."""
        self.http.request(
            "POST",
            "/v2/files",
            data=data,
            headers={
                "Content-Type": "application/octet-stream",
                "x-vercel-digest": sha1,
                "Content-Length": str(len(data)),
            },
        )

    def create_deployment(self, body: dict[str, Any]) -> Deployment:
        """Raises `MissingFiles` when shas must be uploaded first, `AmbiguousError` when the
        answer is lost (the deployment may exist: look before creating again)."""
        response = self.http.request(
            "POST",
            "/v13/deployments",
            idempotent=False,
            accept=(400,),
            params={"skipAutoDetectionConfirmation": "1"},
            json=body,
        )
        if response.status_code == 400:
            error = _error_body(response)
            if error.get("code") == "missing_files":
                missing = [str(s) for s in error.get("missing") or []]
                raise MissingFiles(missing, provider_message(PROVIDER, response))
            self._raise_for(response, idempotent=False)
        return Deployment.from_json(response.json())

    def get_deployment(self, deployment_id: str) -> Deployment | None:
        response = self.http.request(
            "GET", f"/v13/deployments/{_path(deployment_id)}", accept=(404,)
        )
        return None if response.status_code == 404 else Deployment.from_json(response.json())

    def list_deployments(self, project_id: str, page_size: int = 100) -> Iterator[Deployment]:
        """Newest first, every page (`pagination.next` passed back as `until`)."""
        until: int | None = None
        while True:
            params: dict[str, str] = {"projectId": project_id, "limit": str(page_size)}
            if until is not None:
                params["until"] = str(until)
            body = self.http.json("GET", "/v7/deployments", params=params)
            for item in body.get("deployments") or []:
                if isinstance(item, dict):
                    yield Deployment.from_json(item)
            following = (body.get("pagination") or {}).get("next")
            if not following:
                return
            until = int(following)

    def list_aliases(self, deployment_id: str) -> list[str]:
        body = self.http.json("GET", f"/v2/deployments/{_path(deployment_id)}/aliases")
        return [str(a["alias"]) for a in body.get("aliases") or [] if isinstance(a, dict)]

    def promote(self, project_id: str, deployment_id: str) -> None:
        """Point the production domains at a READY production deployment, without rebuilding.
        201/202 (the switch may finish later); 409 → `PromotionConflict` (try again later)."""
        response = self.http.request(
            "POST",
            f"/v10/projects/{_path(project_id)}/promote/{_path(deployment_id)}",
            idempotent=False,
            accept=(409,),
        )
        if response.status_code == 409:
            raise PromotionConflict(provider_message(PROVIDER, response))
