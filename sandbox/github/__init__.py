"""The GitHub emulator: REST (/api/v3), GraphQL (/api/graphql) and git smart-HTTP, over HTTPS.

Enough of GitHub for `gh repo create/view/delete`, `git push/clone` and forge-deploy's own
client: repositories in orgs and user accounts, topics, branches and commits read from real
bare repositories, GitHub's error bodies and a counting rate limit.
"""

from __future__ import annotations

from typing import Any

from sandbox.context import Context, Service
from sandbox.github import today
from sandbox.github.admin import admin_routes
from sandbox.github.app import build_app
from sandbox.github.errors import error_body
from sandbox.github.repos import Repos


def build(ctx: Context) -> Service:
    repos = Repos(ctx)
    tokens = today.Tokens()

    def resources() -> dict[str, Any]:
        return {
            "org": ctx.identity.github_org,
            "user": ctx.identity.github_user,
            "repos": [
                {
                    "owner": record["owner"],
                    "name": record["name"],
                    "full_name": f"{record['owner']}/{record['name']}",
                    "private": record["private"],
                    "visibility": "private" if record["private"] else "public",
                    "description": record["description"],
                    "topics": record["topics"],
                    "archived": record["archived"],
                    "default_branch": record["default_branch"],
                    "pushed_commit": repos.head(record),
                    "created_at": record["created_at"],
                }
                for record in sorted(repos.all(), key=lambda r: r["id"])
            ],
        }

    return Service(
        name="github",
        app=build_app(ctx, repos, tokens),
        error_body=error_body,
        resources=resources,
        apps_routes=admin_routes(ctx, tokens),
    )
