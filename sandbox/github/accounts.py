"""The sandbox's two GitHub accounts (the token's user and its organisation) and their JSON.

Ids are fixed; node ids use GitHub's legacy global-id form, base64 of `<len>:<Type><id>`, so
`GET /users/{login}` hands gh the same `node_id` that the GraphQL `ownerId` later names.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sandbox.context import Context

USER_ID = 1001
ORG_ID = 2001
CREATED_AT = "2024-01-01T00:00:00Z"


def node_id(type_name: str, number: int | str) -> str:
    raw = f"{type_name}{number}"
    return base64.b64encode(f"{len(type_name):02d}:{raw}".encode()).decode()


@dataclass(frozen=True)
class Account:
    login: str
    id: int
    type: str  # "User" | "Organization"
    name: str

    @property
    def node_id(self) -> str:
        return node_id(self.type, self.id)

    @property
    def is_org(self) -> bool:
        return self.type == "Organization"


class Accounts:
    """Lookup by login (case-insensitive, as GitHub) or by node id."""

    def __init__(self, ctx: Context) -> None:
        ident = ctx.identity
        self.user = Account(ident.github_user, USER_ID, "User", ident.github_user)
        self.org = Account(ident.github_org, ORG_ID, "Organization", ident.github_org)
        self.api = ctx.urls.github_api
        self.web = ctx.urls.github_git

    def all(self) -> list[Account]:
        return [self.user, self.org]

    def by_login(self, login: str) -> Account | None:
        for account in self.all():
            if account.login.lower() == login.lower():
                return account
        return None

    def by_node_id(self, value: str) -> Account | None:
        for account in self.all():
            if account.node_id == value:
                return account
        return None

    # -- JSON shapes (github.json components) ------------------------------------------------
    def simple(self, account: Account) -> dict[str, Any]:
        """`simple-user`."""
        kind = "orgs" if account.is_org else "users"
        base = f"{self.api}/{kind}/{account.login}"
        users = f"{self.api}/users/{account.login}"
        return {
            "login": account.login,
            "id": account.id,
            "node_id": account.node_id,
            "avatar_url": f"{self.web}/avatars/u/{account.id}",
            "gravatar_id": "",
            "url": base,
            "html_url": f"{self.web}/{account.login}",
            "followers_url": f"{users}/followers",
            "following_url": f"{users}/following{{/other_user}}",
            "gists_url": f"{users}/gists{{/gist_id}}",
            "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{users}/subscriptions",
            "organizations_url": f"{users}/orgs",
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{users}/received_events",
            "type": account.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def public(self, account: Account, public_repos: int) -> dict[str, Any]:
        """`public-user` (GET /users/{login}); organisations answer it too, typed as such."""
        return {
            **self.simple(account),
            "name": account.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": public_repos,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
        }

    def private(self, public_repos: int, private_repos: int) -> dict[str, Any]:
        """`private-user` (GET /user)."""
        return {
            **self.public(self.user, public_repos),
            "user_view_type": "private",
            "notification_email": None,
            "private_gists": 0,
            "total_private_repos": private_repos,
            "owned_private_repos": private_repos,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "plan": {"name": "pro", "space": 976562499, "private_repos": 9999, "collaborators": 0},
        }

    def organization(self, public_repos: int, private_repos: int) -> dict[str, Any]:
        """`organization-full` (GET /orgs/{org})."""
        org = self.org
        base = f"{self.api}/orgs/{org.login}"
        return {
            "login": org.login,
            "id": org.id,
            "node_id": org.node_id,
            "url": base,
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events",
            "hooks_url": f"{base}/hooks",
            "issues_url": f"{base}/issues",
            "members_url": f"{base}/members{{/member}}",
            "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"{self.web}/avatars/u/{org.id}",
            "description": None,
            "name": org.name,
            "is_verified": False,
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": public_repos,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "html_url": f"{self.web}/{org.login}",
            "type": "Organization",
            "total_private_repos": private_repos,
            "owned_private_repos": private_repos,
            "private_gists": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "billing_email": None,
            "plan": {"name": "team", "space": 976562499, "private_repos": 999999, "seats": 5},
            "default_repository_permission": "read",
            "members_can_create_repositories": True,
            "two_factor_requirement_enabled": False,
            "members_allowed_repository_creation_type": "all",
            "members_can_create_public_repositories": True,
            "members_can_create_private_repositories": True,
            "members_can_create_internal_repositories": False,
            "members_can_delete_repositories": True,
            "members_can_fork_private_repositories": False,
            "web_commit_signoff_required": False,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "archived_at": None,
        }
