"""Resolvers for gql_schema: how each GraphQL field is read from the sandbox's state.

Values flowing through the schema: a repository record (dict) for Repository, an Account for
User/Organization, `{"__typename": ..., ...}` dicts for everything else. A field without a
resolver here is read from a dict source by name. A failing field raises ResolveError, which
GitHub reports with a `type` (NOT_FOUND, UNPROCESSABLE, ...) and a null field.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.github import bare
from sandbox.github.accounts import Account, Accounts
from sandbox.github.errors import GitHubError
from sandbox.github.ratelimit import Outcome
from sandbox.github.repos import Record, Repos
from sandbox.github.shapes import Shapes
from sandbox.github.validation import repo_name


class ResolveError(Exception):
    def __init__(self, message: str, type_: str) -> None:
        super().__init__(message)
        self.message = message
        self.type = type_


@dataclass
class Env:
    repos: Repos
    accounts: Accounts
    shapes: Shapes
    rate: Outcome | None = None


Resolver = Callable[[Any, dict[str, Any], Env], Any]
EMPTY_CONNECTION = {"totalCount": 0, "totalSize": 0, "nodes": [], "edges": []}
CREATED_AT = "2024-01-01T00:00:00Z"


def _key(name: str) -> Resolver:
    return lambda value, args, env: value[name]


def _const(result: Any) -> Resolver:
    return lambda value, args, env: result


def _utc(value: str) -> str:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Repository ---------------------------------------------------------------------------------
def _url(record: Record, args: dict[str, Any], env: Env) -> str:
    return env.shapes.html_url(record)


def _default_ref(record: Record, args: dict[str, Any], env: Env) -> Any:
    sha = env.repos.head(record)
    if sha is None:
        return None
    return {"__typename": "Ref", "record": record, "name": record["default_branch"], "sha": sha}


def _topics(record: Record, args: dict[str, Any], env: Env) -> Any:
    first = args.get("first")
    chosen = record["topics"][: first if isinstance(first, int) and first >= 0 else None]
    nodes = [{"__typename": "RepositoryTopic", "name": name} for name in chosen]
    return {"totalCount": len(record["topics"]), "nodes": nodes}


_EMPTY_CONNECTIONS = (
    "assignableUsers", "mentionableUsers", "watchers", "issues", "pullRequests", "labels",
    "milestones", "projects", "languages",
)  # fmt: skip
REPOSITORY: dict[str, Resolver] = {
    "id": _key("node_id"),
    "databaseId": _key("id"),
    "name": _key("name"),
    "nameWithOwner": lambda r, a, e: f"{r['owner']}/{r['name']}",
    "description": _key("description"),
    "descriptionHTML": lambda r, a, e: f"<div>{r['description'] or ''}</div>",
    "shortDescriptionHTML": lambda r, a, e: (r["description"] or "")[: a.get("limit") or 200],
    "url": _url,
    "resourcePath": lambda r, a, e: f"/{r['owner']}/{r['name']}",
    "homepageUrl": _key("homepage"),
    "sshUrl": lambda r, a, e: e.shapes.repository(r)["ssh_url"],
    "openGraphImageUrl": lambda r, a, e: f"{_url(r, a, e)}/opengraph.png",
    "isPrivate": _key("private"),
    "isArchived": _key("archived"),
    "isTemplate": _key("is_template"),
    "isEmpty": lambda r, a, e: not bare.branches(e.repos.path(r)),
    "isInOrganization": lambda r, a, e: r["owner"] == e.accounts.org.login,
    "isBlankIssuesEnabled": _const(True),
    "isSecurityPolicyEnabled": _const(False),
    "visibility": lambda r, a, e: "PRIVATE" if r["private"] else "PUBLIC",
    "createdAt": _key("created_at"),
    "updatedAt": _key("updated_at"),
    "pushedAt": _key("pushed_at"),
    "diskUsage": _key("size"),
    "hasIssuesEnabled": _key("has_issues"),
    "hasProjectsEnabled": _key("has_projects"),
    "hasWikiEnabled": _key("has_wiki"),
    "hasDiscussionsEnabled": _key("has_discussions"),
    "mergeCommitAllowed": _key("allow_merge_commit"),
    "rebaseMergeAllowed": _key("allow_rebase_merge"),
    "squashMergeAllowed": _key("allow_squash_merge"),
    "autoMergeAllowed": _key("allow_auto_merge"),
    "deleteBranchOnMerge": _key("delete_branch_on_merge"),
    "viewerPermission": _const("ADMIN"),
    "viewerCanAdminister": _const(True),
    "viewerSubscription": _const("SUBSCRIBED"),
    "viewerDefaultMergeMethod": _const("MERGE"),
    "viewerPossibleCommitEmails": _const([]),
    "owner": lambda r, a, e: e.accounts.by_login(r["owner"]),
    "defaultBranchRef": _default_ref,
    "repositoryTopics": _topics,
    "contactLinks": _const([]),
    "fundingLinks": _const([]),
    "issueTemplates": _const([]),
    "pullRequestTemplates": _const([]),
    **{name: _const(EMPTY_CONNECTION) for name in _EMPTY_CONNECTIONS},
}
for _name in (
    "isFork",
    "isMirror",
    "isLocked",
    "isDisabled",
    "isUserConfigurationRepository",
    "usesCustomOpenGraphImage",
    "viewerHasStarred",
):
    REPOSITORY[_name] = _const(False)
for _name in ("forkCount", "stargazerCount"):
    REPOSITORY[_name] = _const(0)


def _commit(ref: dict[str, Any], env: Env) -> bare.CommitInfo:
    return bare.commit(env.repos.path(ref["record"]), ref["sha"])


REF: dict[str, Resolver] = {
    "id": lambda ref, a, e: f"{ref['record']['node_id']}:refs/heads/{ref['name']}",
    "prefix": _const("refs/heads/"),
    "target": lambda ref, a, e: {**ref, "__typename": "Commit"},
}
COMMIT: dict[str, Resolver] = {
    "id": lambda ref, a, e: f"C_{ref['sha']}",
    "oid": _key("sha"),
    "abbreviatedOid": lambda ref, a, e: ref["sha"][:7],
    "message": lambda ref, a, e: _commit(ref, e).message,
    "messageHeadline": lambda ref, a, e: _commit(ref, e).message.split("\n", 1)[0],
    "committedDate": lambda ref, a, e: _utc(_commit(ref, e).committer.date),
    "authoredDate": lambda ref, a, e: _utc(_commit(ref, e).author.date),
    "url": lambda ref, a, e: f"{e.shapes.html_url(ref['record'])}/commit/{ref['sha']}",
}
REPOSITORY_TOPIC: dict[str, Resolver] = {
    "id": lambda t, a, e: f"RT_{t['name']}",
    "topic": lambda t, a, e: {"__typename": "Topic", "id": f"T_{t['name']}", "name": t["name"]},
    "url": lambda t, a, e: f"{e.accounts.web}/topics/{t['name']}",
    "resourcePath": lambda t, a, e: f"/topics/{t['name']}",
}


# -- accounts -----------------------------------------------------------------------------------
def _owned(account: Account, args: dict[str, Any], env: Env) -> Any:
    name = str(args["name"])
    record = env.repos.get(account.login, name)
    if record is None and args.get("followRenames", True):
        record = env.repos.redirect(account.login, name)
    return record


def _cursor(position: int) -> str:
    return base64.b64encode(f"cursor:v2:{position}".encode()).decode()


def _position(cursor: Any) -> int:
    try:
        return int(base64.b64decode(str(cursor)).decode().rsplit(":", 1)[1])
    except (ValueError, IndexError, UnicodeDecodeError, binascii.Error):
        raise ResolveError(
            f"`{cursor}` does not appear to be a valid cursor.", "INVALID_CURSOR_ARGUMENTS"
        ) from None


_ORDER = {
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "PUSHED_AT": "pushed_at",
    "STARGAZERS": "id",
}


def _repositories(account: Account, args: dict[str, Any], env: Env) -> Any:
    """A page of the account's repositories (forward paging with first/after)."""
    records = [] if args.get("isFork") else env.repos.all(account.login)
    privacy = args.get("privacy")
    if privacy is not None:
        records = [r for r in records if r["private"] == (privacy == "PRIVATE")]
    order = args.get("orderBy") or {"field": "NAME", "direction": "ASC"}
    field = _ORDER.get(order["field"])
    records.sort(
        key=lambda r: (r[field], r["id"]) if field else (r["name"].lower(), r["id"]),
        reverse=order["direction"] == "DESC",
    )
    start = _position(args["after"]) if args.get("after") else 0
    first = args.get("first")
    size = min(first if isinstance(first, int) and first >= 0 else 100, 100)
    page = records[start : start + size]
    end = start + len(page)
    return {
        "totalCount": len(records),
        "totalDiskUsage": sum(r["size"] for r in records),
        "nodes": page,
        "pageInfo": {
            "hasNextPage": end < len(records),
            "hasPreviousPage": start > 0,
            "startCursor": _cursor(start + 1) if page else None,
            "endCursor": _cursor(end) if page else None,
        },
    }


ACCOUNT: dict[str, Resolver] = {
    "id": lambda acc, a, e: acc.node_id,
    "databaseId": lambda acc, a, e: acc.id,
    "login": lambda acc, a, e: acc.login,
    "name": lambda acc, a, e: acc.name,
    "url": lambda acc, a, e: f"{e.accounts.web}/{acc.login}",
    "resourcePath": lambda acc, a, e: f"/{acc.login}",
    "avatarUrl": lambda acc, a, e: f"{e.accounts.web}/avatars/u/{acc.id}",
    "email": lambda acc, a, e: None if acc.is_org else "",
    "createdAt": _const(CREATED_AT),
    "isViewer": lambda acc, a, e: acc == e.accounts.user,
    "isSiteAdmin": _const(False),
    "repository": _owned,
    "repositories": _repositories,
}


# -- root fields --------------------------------------------------------------------------------
def _repository(_: Any, args: dict[str, Any], env: Env) -> Any:
    owner, name = str(args["owner"]), str(args["name"])
    record = env.repos.get(owner, name)
    if record is None and args.get("followRenames", True):
        record = env.repos.redirect(owner, name)
    if record is None:
        raise ResolveError(
            f"Could not resolve to a Repository with the name '{owner}/{name}'.", "NOT_FOUND"
        )
    return record


def _account(kind: str) -> Resolver:
    def resolve(_: Any, args: dict[str, Any], env: Env) -> Any:
        login = str(args["login"])
        account = env.accounts.by_login(login)
        if account is None or account.type != kind:
            article = "an" if kind[0] in "AEIOU" else "a"
            raise ResolveError(
                f"Could not resolve to {article} {kind} with the login of '{login}'.", "NOT_FOUND"
            )
        return account

    return resolve


def _node(_: Any, args: dict[str, Any], env: Env) -> Any:
    wanted = str(args["id"])
    found: Any = env.accounts.by_node_id(wanted)
    if found is None:
        found = next((r for r in env.repos.all() if r["node_id"] == wanted), None)
    if found is None:
        raise ResolveError(
            f"Could not resolve to a node with the global id of '{wanted}'", "NOT_FOUND"
        )
    return found


def _rate_limit(_: Any, args: dict[str, Any], env: Env) -> Any:
    budget = env.rate.budget if env.rate else None
    if budget is None:
        return None
    reset = dt.datetime.fromtimestamp(budget.reset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "limit": budget.limit,
        "cost": 1,
        "remaining": budget.remaining,
        "used": budget.used,
        "resetAt": reset,
        "nodeCount": 1,
    }


def _create_repository(_: Any, args: dict[str, Any], env: Env) -> Any:
    given: dict[str, Any] = args["input"]
    visibility = given["visibility"]
    if visibility == "INTERNAL":
        raise ResolveError(
            "Internal repositories are only available to organizations on GitHub Enterprise.",
            "UNPROCESSABLE",
        )
    owner_id = given.get("ownerId")
    owner = env.accounts.user if owner_id is None else env.accounts.by_node_id(str(owner_id))
    if owner is None:
        raise ResolveError(
            f"Could not resolve to a node with the global id of '{owner_id}'", "NOT_FOUND"
        )
    settings: dict[str, Any] = {"private": visibility == "PRIVATE"}
    for source, target in (
        ("description", "description"),
        ("homepageUrl", "homepage"),
        ("hasIssuesEnabled", "has_issues"),
        ("hasWikiEnabled", "has_wiki"),
        ("template", "is_template"),
    ):
        if given.get(source) is not None:
            settings[target] = given[source]
    try:
        record = env.repos.create(owner, repo_name(str(given["name"])), settings, None)
    except GitHubError as e:
        detail = e.errors[0]["message"] if e.errors and isinstance(e.errors[0], dict) else ""
        message = detail[:1].upper() + detail[1:] if detail else e.message
        raise ResolveError(message, "UNPROCESSABLE") from e
    return {"repository": record, "clientMutationId": given.get("clientMutationId")}


RESOLVERS: dict[str, dict[str, Resolver]] = {
    "Query": {
        "repository": _repository,
        "viewer": lambda _, a, e: e.accounts.user,
        "user": _account("User"),
        "organization": _account("Organization"),
        "repositoryOwner": lambda _, a, e: e.accounts.by_login(str(a["login"])),
        "node": _node,
        "rateLimit": _rate_limit,
    },
    "Mutation": {"createRepository": _create_repository},
    "Repository": REPOSITORY,
    "Ref": REF,
    "Commit": COMMIT,
    "RepositoryTopic": REPOSITORY_TOPIC,
    "User": ACCOUNT,
    "Organization": ACCOUNT,
}


def type_of(value: Any) -> str | None:
    """The concrete GraphQL type of a value returned where an interface is expected."""
    if isinstance(value, Account):
        return value.type
    if isinstance(value, dict):
        if "__typename" in value:
            return str(value["__typename"])
        if "node_id" in value and "default_branch" in value:
            return "Repository"
    return None
