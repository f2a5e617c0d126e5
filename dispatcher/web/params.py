"""The request parameters the API and the pages share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam

from runner.events import DEPLOYMENT_ID_RE, DEPLOYMENT_ID_RULE

MAX_ID = 2**63 - 1  # an event id: what an SQLite / PostgreSQL bigint holds
PROJECT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"  # the caller's id of a project

DeploymentIdPath = Annotated[
    str,
    PathParam(
        pattern=f"^{DEPLOYMENT_ID_RE}$",
        description=f"dep_ and 24 hex digits (any {DEPLOYMENT_ID_RULE} is looked up)",
    ),
]
