"""GitHub's REST API, the part a deploy needs: one org's repositories, their topics and branches.

Every call goes through `ProviderHttp` (one error model, retries, injected sleep). Redirects are
never followed: GitHub answers 301/307 for the old name of a renamed repository, and following
one would let a PATCH or DELETE meant for our name land on someone's renamed repository. A
redirect therefore reads as "no repository under this name".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from runner.ensure import AlreadyExists
from runner.errors import FatalError, MissingPermissions
from runner.http import ProviderHttp, classify

PROVIDER = "github"
_REDIRECTS = (301, 302, 307, 308)


@dataclass(frozen=True)
class Repo:
    full_name: str
    name: str
    html_url: str
    clone_url: str
    private: bool
    description: str | None
    topics: tuple[str, ...]
    archived: bool
    default_branch: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Repo:
        return cls(
            full_name=str(body["full_name"]),
            name=str(body["name"]),
            html_url=str(body["html_url"]),
            clone_url=str(body["clone_url"]),
            private=bool(body["private"]),
            description=body.get("description"),
            topics=tuple(str(t) for t in body.get("topics") or ()),
            archived=bool(body.get("archived", False)),
            default_branch=str(body.get("default_branch") or "main"),
        )


@dataclass(frozen=True)
class Branch:
    name: str
    sha: str  # the head commit
    tree: str  # that commit's tree


def _name_taken(response: requests.Response) -> bool:
    """A 422 validation-error whose `errors` say the repository name is already taken."""
    try:
        body = response.json()
    except ValueError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        if (
            isinstance(error, dict)
            and error.get("field") == "name"
            and "already exists" in str(error.get("message", ""))
        ):
            return True
    return False


class GithubClient:
    def __init__(self, http: ProviderHttp, org: str) -> None:
        self.http = http
        self.org = org

    def _repo_path(self, name: str) -> str:
        return f"/repos/{quote(self.org, safe='')}/{quote(name, safe='')}"

    def _moved(self, response: requests.Response, name: str, what: str) -> FatalError:
        return FatalError(
            PROVIDER,
            response.status_code,
            f"{what} {self.org}/{name}: the repository was renamed or moved; "
            "refusing to follow the redirect",
        )

    def get_repo(self, name: str) -> Repo | None:
        """The repository `org/name`, or None when there is none (or the name only redirects)."""
        response = self.http.request(
            "GET", self._repo_path(name), accept=(404, *_REDIRECTS), allow_redirects=False
        )
        if response.status_code != 200:
            return None
        return Repo.from_json(response.json())

    def create_repo(self, name: str, description: str) -> Repo:
        """A private, empty repository. Not idempotent: a lost answer is an AmbiguousError and a
        name already taken is AlreadyExists, both resolved by looking again (runner.ensure).
        A fine-grained token lacking a permission (403 with `X-Accepted-GitHub-Permissions`)
        and a 451 fail at once, saying what to change."""
        try:
            response = self.http.request(
                "POST",
                f"/orgs/{quote(self.org, safe='')}/repos",
                json={
                    "name": name,
                    "description": description,
                    "private": True,
                    "auto_init": False,
                },
                idempotent=False,
                accept=(422,),
                allow_redirects=False,
            )
        except MissingPermissions as e:
            raise e.needed_to(
                f"create the app's repository {self.org}/{name}: a fine-grained token needs "
                f"{self.org} as its resource owner, with Administration: write and Contents: "
                "write on its repositories"
            ) from e
        except FatalError as e:
            if e.status != 451:
                raise
            raise FatalError(
                PROVIDER,
                451,
                f"GitHub refused to create {self.org}/{name} for legal reasons (451 Unavailable "
                f"For Legal Reasons: {e.message}); nothing was created. Deploy under another "
                f"name or organisation, or ask GitHub Support about {self.org}",
            ) from e
        if response.status_code == 422:
            if _name_taken(response):
                raise AlreadyExists(PROVIDER, f"repository {self.org}/{name} already exists")
            error = classify(PROVIDER, response, time.time(), idempotent=False)
            assert error is not None
            raise error
        return Repo.from_json(response.json())

    def _update(self, name: str, fields: dict[str, Any], what: str) -> Repo:
        response = self.http.request(
            "PATCH", self._repo_path(name), json=fields, allow_redirects=False
        )
        if response.status_code in _REDIRECTS:
            raise self._moved(response, name, what)
        return Repo.from_json(response.json())

    def set_archived(self, name: str, archived: bool) -> Repo:
        return self._update(name, {"archived": archived}, "archive" if archived else "unarchive")

    def archive(self, name: str) -> Repo:
        return self.set_archived(name, True)

    def set_topics(self, name: str, topics: list[str]) -> tuple[str, ...]:
        """Replace the topics; returns them as GitHub stored them (lower-cased, de-duplicated)."""
        response = self.http.request(
            "PUT",
            f"{self._repo_path(name)}/topics",
            json={"names": topics},
            allow_redirects=False,
        )
        if response.status_code in _REDIRECTS:
            raise self._moved(response, name, "set topics of")
        return tuple(str(t) for t in response.json().get("names", []))

    def delete(self, name: str) -> bool:
        """Delete `org/name`: True when this call deleted it, False when it was already gone."""
        response = self.http.request(
            "DELETE", self._repo_path(name), accept=(404, *_REDIRECTS), allow_redirects=False
        )
        return response.status_code == 204

    def branch(self, name: str, branch: str) -> Branch | None:
        """The branch's head commit and tree; None when the repo or the branch does not exist."""
        response = self.http.request(
            "GET",
            f"{self._repo_path(name)}/branches/{quote(branch, safe='')}",
            accept=(404, *_REDIRECTS),
            allow_redirects=False,
        )
        if response.status_code != 200:
            return None
        commit = response.json()["commit"]
        return Branch(branch, str(commit["sha"]), str(commit["commit"]["tree"]["sha"]))

    def branch_head(self, name: str, branch: str) -> str | None:
        found = self.branch(name, branch)
        return found.sha if found else None
