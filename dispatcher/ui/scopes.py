"""What a page session may see and do: the scope a link names, one of

    deployment:<id>   that deployment: its page, summary, log, events and actions
    project:<id>      the deployments of that project
    all               every deployment (an operator's link: `forge-dispatcher link --all`)

A session holds the grants of the links it was opened with (`links.Session`), each a scope and
its own expiry; a request is allowed when one live grant allows it. A teardown started from a
deployment's page adds the teardown it queued (a new deployment) to the session: what a session
made, it may watch. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from dispatcher.model import Deployment
from dispatcher.web.params import PROJECT_ID_PATTERN
from runner.events import DEPLOYMENT_ID_RE

Kind = Literal["deployment", "project", "all"]
_DEPLOYMENT = re.compile(f"^{DEPLOYMENT_ID_RE}$")
_PROJECT = re.compile(PROJECT_ID_PATTERN)


@dataclass(frozen=True)
class Scope:
    kind: Kind
    name: str = ""  # the deployment's or the project's id; "" for all

    @classmethod
    def deployment(cls, deployment_id: str) -> Scope:
        return cls.parse(f"deployment:{deployment_id}")

    @classmethod
    def project(cls, project_id: str) -> Scope:
        return cls.parse(f"project:{project_id}")

    @classmethod
    def everything(cls) -> Scope:
        return cls("all")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The scope `text` names; ValueError naming what is wrong."""
        if text == "all":
            return cls("all")
        kind, _, name = text.partition(":")
        if kind == "deployment" and _DEPLOYMENT.match(name):
            return cls("deployment", name)
        if kind == "project" and _PROJECT.match(name):
            return cls("project", name)
        raise ValueError(f"a link opens deployment:<id>, project:<id> or all, not {text[:80]!r}")

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.name}"

    @property
    def target(self) -> str:
        """The page a link of this scope opens."""
        if self.kind == "deployment":
            return f"/ui/deployments/{self.name}"
        if self.kind == "project":
            return f"/ui/?project={quote(self.name, safe='')}"
        return "/ui/"

    @property
    def words(self) -> str:
        """What it opens, in the pages' words."""
        if self.kind == "deployment":
            return f"deployment {self.name}"
        if self.kind == "project":
            return f"the deployments of project {self.name}"
        return "every deployment"

    def allows(self, deployment: Deployment) -> bool:
        if self.kind == "deployment":
            return deployment.id == self.name
        if self.kind == "project":
            return deployment.project_id == self.name
        return True

    def allows_project(self, project_id: str) -> bool:
        """Whether every deployment of `project_id` is within (a filter of the list)."""
        return self.kind == "all" or (self.kind == "project" and self.name == project_id)

    def covers(self, other: Scope) -> bool:
        """Whether everything `other` allows, this allows too (without looking anything up:
        a project's deployment is checked with `allows`)."""
        return self.kind == "all" or self == other


@dataclass(frozen=True)
class Grant:
    scope: Scope
    expires: int  # unix seconds


@dataclass(frozen=True)
class Grants:
    """The live grants of a session, as of `now`."""

    items: tuple[Grant, ...]

    @property
    def everything(self) -> bool:
        return any(g.scope.kind == "all" for g in self.items)

    def allows(self, deployment: Deployment) -> bool:
        return any(g.scope.allows(deployment) for g in self.items)

    def allows_project(self, project_id: str) -> bool:
        return any(g.scope.allows_project(project_id) for g in self.items)

    def covers(self, scope: Scope) -> bool:
        return any(g.scope.covers(scope) for g in self.items)

    def deployment_ids(self) -> list[str]:
        return [g.scope.name for g in self.items if g.scope.kind == "deployment"]

    def project_ids(self) -> list[str]:
        return [g.scope.name for g in self.items if g.scope.kind == "project"]
