"""JSON for repositories, commits and branches, shaped as github.json's components.

One repository dict serves `full-repository`, `repository` and `minimal-repository`: it holds
every field that any of the three requires, with values valid under all of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from sandbox.github import bare
from sandbox.github.accounts import Accounts, node_id
from sandbox.github.repos import Record


def _utc(date: str) -> str:
    """git's ISO 8601 date with offset, as GitHub's UTC `Z` form."""
    try:
        parsed = dt.datetime.fromisoformat(date)
    except ValueError:
        return date
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Shapes:
    def __init__(self, accounts: Accounts, host: str) -> None:
        self.accounts = accounts
        self.api = accounts.api
        self.web = accounts.web
        self.host = host

    def repo_api(self, record: Record) -> str:
        return f"{self.api}/repos/{record['owner']}/{record['name']}"

    def html_url(self, record: Record) -> str:
        return f"{self.web}/{record['owner']}/{record['name']}"

    def repository(self, record: Record) -> dict[str, Any]:
        owner = self.accounts.by_login(record["owner"])
        assert owner is not None, record["owner"]
        api = self.repo_api(record)
        html = self.html_url(record)
        full_name = f"{record['owner']}/{record['name']}"
        body: dict[str, Any] = {
            "id": record["id"],
            "node_id": record["node_id"],
            "name": record["name"],
            "full_name": full_name,
            "private": record["private"],
            "owner": self.accounts.simple(owner),
            "html_url": html,
            "description": record["description"],
            "fork": False,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": record["created_at"],
            "updated_at": record["updated_at"],
            "pushed_at": record["pushed_at"],
            "git_url": f"git://{self.host}/{full_name}.git",
            "ssh_url": f"git@{self.host}:{full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": record["homepage"],
            "size": record["size"],
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": record["has_issues"],
            "has_projects": record["has_projects"],
            "has_downloads": record["has_downloads"],
            "has_wiki": record["has_wiki"],
            "has_pages": False,
            "has_discussions": record["has_discussions"],
            "forks_count": 0,
            "mirror_url": None,
            "archived": record["archived"],
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "allow_forking": record["allow_forking"],
            "is_template": record["is_template"],
            "web_commit_signoff_required": record["web_commit_signoff_required"],
            "topics": list(record["topics"]),
            "visibility": "private" if record["private"] else "public",
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": record["default_branch"],
            "permissions": {
                "admin": True,
                "maintain": True,
                "push": True,
                "triage": True,
                "pull": True,
            },
            "role_name": "admin",
            "temp_clone_token": "",
            "allow_squash_merge": record["allow_squash_merge"],
            "allow_merge_commit": record["allow_merge_commit"],
            "allow_rebase_merge": record["allow_rebase_merge"],
            "allow_auto_merge": record["allow_auto_merge"],
            "delete_branch_on_merge": record["delete_branch_on_merge"],
            "allow_update_branch": record["allow_update_branch"],
            "use_squash_pr_title_as_default": record["use_squash_pr_title_as_default"],
            "squash_merge_commit_title": record["squash_merge_commit_title"],
            "squash_merge_commit_message": record["squash_merge_commit_message"],
            "merge_commit_title": record["merge_commit_title"],
            "merge_commit_message": record["merge_commit_message"],
            "custom_properties": {},
            "network_count": 0,
            "subscribers_count": 0,
        }
        if owner.is_org:
            body["organization"] = self.accounts.simple(owner)
        return body

    def commit(self, record: Record, info: bare.CommitInfo) -> dict[str, Any]:
        """`commit` (GET /repos/{owner}/{repo}/commits/{ref})."""
        api = self.repo_api(record)
        html = self.html_url(record)
        files = [
            {
                "sha": change.sha,
                "filename": change.filename,
                "status": change.status,
                "additions": change.additions,
                "deletions": change.deletions,
                "changes": change.additions + change.deletions,
                "blob_url": f"{html}/blob/{info.sha}/{quote(change.filename)}",
                "raw_url": f"{html}/raw/{info.sha}/{quote(change.filename)}",
                "contents_url": f"{api}/contents/{quote(change.filename)}?ref={info.sha}",
            }
            for change in info.files[:300]
        ]
        additions = sum(change.additions for change in info.files)
        deletions = sum(change.deletions for change in info.files)
        return {
            "sha": info.sha,
            "node_id": node_id("Commit", f"{record['id']}:{info.sha}"),
            "url": f"{api}/commits/{info.sha}",
            "html_url": f"{html}/commit/{info.sha}",
            "comments_url": f"{api}/commits/{info.sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{info.sha}",
                "author": self._person(info.author),
                "committer": self._person(info.committer),
                "message": info.message,
                "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "author": self._account(info.author),
            "committer": self._account(info.committer),
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in info.parents
            ],
            "stats": {
                "total": additions + deletions,
                "additions": additions,
                "deletions": deletions,
            },
            "files": files,
        }

    def _account(self, person: bare.Person) -> dict[str, Any]:
        """The account a commit's email belongs to; `{}` (empty-object) for a stranger.

        GitHub answers null for an unknown email, but this document's nullable oneOf rejects
        null (openapi-core), so the empty object it also allows stands in for it.
        """
        for account in self.accounts.all():
            if person.email.lower() in (
                f"{account.id}+{account.login}@users.noreply.github.com".lower(),
                f"{account.login}@users.noreply.github.com".lower(),
            ):
                return self.accounts.simple(account)
        return {}

    @staticmethod
    def _person(person: bare.Person) -> dict[str, str]:
        return {"name": person.name, "email": person.email, "date": _utc(person.date)}

    def branch(self, record: Record, name: str, info: bare.CommitInfo) -> dict[str, Any]:
        """`branch-with-protection` (GET /repos/{owner}/{repo}/branches/{branch})."""
        api = self.repo_api(record)
        return {
            "name": name,
            "commit": self.commit(record, info),
            "_links": {
                "self": f"{api}/branches/{quote(name)}",
                "html": f"{self.html_url(record)}/tree/{quote(name)}",
            },
            "protected": False,
            "protection": {
                "enabled": False,
                "required_status_checks": {
                    "enforcement_level": "off",
                    "contexts": [],
                    "checks": [],
                },
            },
            "protection_url": f"{api}/branches/{quote(name)}/protection",
        }
