"""The repositories: metadata in a JsonStore, contents in bare git repos beside it.

Names are matched case-insensitively, as on GitHub; a record keeps the spelling it was created
with, and its bare repo lives at `<state>/github/repos/<owner>/<name>.git`. Renamed repos leave a
redirect behind until the old name is taken again. Methods that touch git block: call them via
`run_in_threadpool`.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

from sandbox.context import Context
from sandbox.github import bare
from sandbox.github.accounts import Account, node_id
from sandbox.github.errors import invalid_field, name_taken, not_found
from sandbox.store import JsonStore

Record = dict[str, Any]

DEFAULTS: Record = {
    "description": None,
    "homepage": None,
    "private": False,
    "topics": [],
    "default_branch": "main",
    "archived": False,
    "has_issues": True,
    "has_projects": True,
    "has_wiki": True,
    "has_downloads": True,
    "has_discussions": False,
    "is_template": False,
    "allow_squash_merge": True,
    "allow_merge_commit": True,
    "allow_rebase_merge": True,
    "allow_auto_merge": False,
    "delete_branch_on_merge": False,
    "allow_update_branch": False,
    "use_squash_pr_title_as_default": False,
    "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
    "squash_merge_commit_message": "COMMIT_MESSAGES",
    "merge_commit_title": "MERGE_MESSAGE",
    "merge_commit_message": "PR_TITLE",
    "allow_forking": True,
    "web_commit_signoff_required": False,
    "size": 0,
}
SETTINGS = tuple(k for k in DEFAULTS if k not in ("topics", "size", "default_branch"))


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key(owner: str, name: str) -> str:
    return f"{owner.lower()}/{name.lower()}"


class Repos:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        service = ctx.service_dir("github")
        self.root = service / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = JsonStore(
            service / "repos.json", {"next_id": 100001, "repos": {}, "redirects": {}}
        )

    # -- reading ------------------------------------------------------------------------------
    def path(self, record: Record) -> Path:
        return self.root / str(record["owner"]) / f"{record['name']}.git"

    def get(self, owner: str, name: str) -> Record | None:
        record = self.store.data["repos"].get(key(owner, name))
        return copy.deepcopy(record) if record else None

    def redirect(self, owner: str, name: str) -> Record | None:
        """The record a renamed repo's old name now points at, if any."""
        target = self.store.data["redirects"].get(key(owner, name))
        return self.get(*target.split("/", 1)) if target else None

    def all(self, owner: str | None = None) -> list[Record]:
        records = self.store.data["repos"].values()
        return [
            copy.deepcopy(r)
            for r in records
            if owner is None or r["owner"].lower() == owner.lower()
        ]

    def head(self, record: Record) -> str | None:
        """The sha of the default branch, straight from the bare repo's ref files."""
        return bare.read_branch(self.path(record), record["default_branch"])

    # -- writing ------------------------------------------------------------------------------
    def create(
        self, owner: Account, name: str, settings: Record, files: dict[str, bytes] | None
    ) -> Record:
        """A new repo with an empty bare repo, or one initial commit holding `files`."""
        now = self.ctx.clock.now()
        with self.store.change() as data:
            if key(owner.login, name) in data["repos"]:
                raise name_taken()
            repo_id = data["next_id"]
            data["next_id"] = repo_id + 1
            record: Record = {
                **copy.deepcopy(DEFAULTS),
                **{k: v for k, v in settings.items() if k in SETTINGS},
                "id": repo_id,
                "node_id": node_id("Repository", repo_id),
                "owner": owner.login,
                "name": name,
                "created_at": iso(now),
                "updated_at": iso(now),
                "pushed_at": iso(now),
            }
            data["repos"][key(owner.login, name)] = record
            data["redirects"].pop(key(owner.login, name), None)
        path = self.path(record)
        try:
            bare.remove(path)  # a leftover of a crash between rmtree and the store write
            bare.init(path, record["default_branch"])
            if files:
                email = f"{owner.id}+{owner.login}@users.noreply.github.com"
                author = bare.Person(owner.login, email, f"{int(now)} +0000")
                bare.initial_commit(path, record["default_branch"], files, "Initial commit", author)
                self._refresh_size(record)
        except bare.GitError:
            with self.store.change() as data:
                data["repos"].pop(key(owner.login, name), None)
            bare.remove(path)
            raise
        return self.get(owner.login, name) or record

    def update(self, record: Record, changes: Record) -> Record:
        """Apply validated PATCH fields (rename and default branch included)."""
        old_key = key(record["owner"], record["name"])
        new_name = str(changes.get("name") or record["name"])
        new_key = key(record["owner"], new_name)
        branch = changes.get("default_branch")
        path = self.path(record)
        if new_key != old_key and new_key in self.store.data["repos"]:
            raise name_taken("Validation Failed")
        if branch is not None and branch != record["default_branch"]:
            known = bare.branches(path)
            if not known:
                raise invalid_field(
                    "default_branch",
                    "Cannot update default branch for an empty repository. "
                    "Please init the repository and push first.",
                )
            if branch not in known:
                raise invalid_field(
                    "default_branch",
                    f"The branch {branch} was not found. Please push that ref first or create "
                    "it via the Git Data API.",
                )
            bare.set_head(path, branch)
        with self.store.change() as data:
            if new_key != old_key and new_key in data["repos"]:
                raise name_taken("Validation Failed")
            if old_key not in data["repos"]:
                raise not_found()  # deleted meanwhile
            current = data["repos"].pop(old_key)
            for field, value in changes.items():
                if field in SETTINGS or field in ("name", "default_branch"):
                    current[field] = value
            current["updated_at"] = iso(self.ctx.clock.now())
            data["repos"][new_key] = current
            if new_key != old_key:
                data["redirects"][old_key] = new_key
                data["redirects"].pop(new_key, None)
                bare.move(path, self.path(current))
            return copy.deepcopy(current)

    def set_topics(self, record: Record, topics: list[str]) -> Record:
        with self.store.change() as data:
            current = data["repos"].get(key(record["owner"], record["name"]))
            if current is None:
                raise not_found()  # deleted meanwhile
            current["topics"] = topics
            current["updated_at"] = iso(self.ctx.clock.now())
            return copy.deepcopy(current)

    def delete(self, record: Record) -> None:
        with self.store.change() as data:
            data["repos"].pop(key(record["owner"], record["name"]), None)
            gone = key(record["owner"], record["name"])
            data["redirects"] = {k: v for k, v in data["redirects"].items() if v != gone}
        bare.remove(self.path(record))

    def pushed(self, owner: str, name: str) -> None:
        """After a receive-pack: stamp pushed_at, recount size, adopt a first pushed branch."""
        record = self.get(owner, name)
        if record is None:
            return
        path = self.path(record)
        known = bare.branches(path)
        branch = record["default_branch"]
        if branch not in known and known:
            branch = "main" if "main" in known else sorted(known)[0]
            bare.set_head(path, branch)
        size = bare.size_kib(path)
        with self.store.change() as data:
            current = data["repos"].get(key(owner, name))
            if current is not None:
                now = iso(self.ctx.clock.now())
                current.update(pushed_at=now, updated_at=now, size=size, default_branch=branch)

    def _refresh_size(self, record: Record) -> None:
        size = bare.size_kib(self.path(record))
        with self.store.change() as data:
            current = data["repos"].get(key(record["owner"], record["name"]))
            if current is not None:
                current["size"] = size
