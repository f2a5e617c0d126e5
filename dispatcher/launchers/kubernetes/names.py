"""An attempt's names in a cluster, pure: its Job's (and Secret's) name, the labels and
annotations that mark it as ours and which attempt it is, the selectors that find it again.

A name is `forge-deploy-<id>-<attempt>` when that is a valid name of at most 63 characters,
else hash-shortened; label values are cut and hash-suffixed the same way, and the exact ids are
kept in annotations (what `handle_fields` reads back).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dispatcher.core.ports import check_attempt
from dispatcher.launchers.common import LABEL_ATTEMPT, LABEL_DEPLOY_ID, LABEL_MANAGED
from dispatcher.launchers.kubernetes.settings import MAX_NAME, NAME_OK
from runner.events import DeploymentId

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
APP_NAME = "forge-runner"  # the NetworkPolicy in k8s/ selects runner pods by this
MANAGED_BY = "forge-dispatcher"
MANAGED_SELECTOR = f"{LABEL_MANAGED}=true,{LABEL_MANAGED_BY}={MANAGED_BY}"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def job_name(deployment_id: str, attempt: int) -> str:
    """`forge-deploy-<id>-<attempt>` when that is a valid name of at most 63 characters; else
    `forge-deploy-<lowercased, cut id>-<10 hex of sha256(id)>-<attempt>`: deterministic, distinct
    per attempt, and two ids that only differ by case or cut never share a name."""
    check_attempt(deployment_id, attempt)
    plain = f"forge-deploy-{deployment_id}-{attempt}"
    if NAME_OK.match(plain) and len(plain) <= MAX_NAME:
        return plain
    slug = re.sub(r"[^a-z0-9-]+", "-", deployment_id.lower()).strip("-")
    tail = f"-{digest(deployment_id)}-{attempt}"
    room = MAX_NAME - len("forge-deploy-") - len(tail)
    slug = slug[:room].rstrip("-")
    return f"forge-deploy-{slug}{tail}" if slug else f"forge-deploy{tail}"


def label_value(value: str) -> str:
    """`value` when it is a valid label value (63 characters, alphanumeric ends); else a cut,
    hash-suffixed form. The exact value is kept in an annotation."""
    if len(value) <= MAX_NAME and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")
    tail = f"-{digest(value)}"
    cut = cleaned[: MAX_NAME - len(tail)].rstrip("-_.")
    return f"{cut}{tail}" if cut else tail.lstrip("-")


def labels(deployment_id: str, attempt: int, *, managed: bool = True) -> dict[str, str]:
    found = {
        LABEL_NAME: APP_NAME,
        LABEL_COMPONENT: "deploy",
        LABEL_DEPLOY_ID: label_value(deployment_id),
        LABEL_ATTEMPT: str(attempt),
    }
    if managed:
        found[LABEL_MANAGED_BY] = MANAGED_BY
        found[LABEL_MANAGED] = "true"
    else:
        found[LABEL_MANAGED_BY] = "kubectl"
    return found


def attempt_annotations(deployment_id: str, attempt: int) -> dict[str, str]:
    return {LABEL_DEPLOY_ID: deployment_id, LABEL_ATTEMPT: str(attempt)}


def attempt_selector(deployment_id: str, attempt: int) -> str:
    """The label selector of one attempt's Job (and its pod)."""
    return (
        f"{MANAGED_SELECTOR},{LABEL_DEPLOY_ID}={label_value(deployment_id)},"
        f"{LABEL_ATTEMPT}={attempt}"
    )


def handle_fields(meta: Mapping[str, Any]) -> tuple[DeploymentId, int] | None:
    """(deployment id, attempt) of a Job's metadata; None when it is not one of ours."""
    found_labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    if found_labels.get(LABEL_MANAGED) != "true":
        return None
    try:
        found = check_attempt(str(notes.get(LABEL_DEPLOY_ID)), int(str(notes.get(LABEL_ATTEMPT))))
    except ValueError:
        return None
    if found_labels.get(LABEL_DEPLOY_ID) != label_value(found[0]):
        return None
    return found
