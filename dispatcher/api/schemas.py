"""The API's request and response bodies (pydantic), which FastAPI turns into the OpenAPI
document. A request body is validated completely before anything is created: unknown fields,
wrong types and over-long strings are refused (422), and `project_name` follows the runner's
app name rules with the runner's own messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from dispatcher.core.builds import MAX_BUILD_DIR
from dispatcher.model import Status
from dispatcher.web.params import PROJECT_ID_PATTERN
from runner.errors import BadInput
from runner.validation import MAX_NAME, app_name

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"  # printable ASCII, no spaces


def _app_name(raw: str) -> str:
    try:
        return app_name(raw)
    except BadInput as e:
        # Without a context pydantic shows the template as is, braces and all.
        raise PydanticCustomError("app_name", str(e)) from e


ProjectId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=PROJECT_ID_PATTERN,
        description="The caller's id of the project: 1-128 of A-Z a-z 0-9 _ . : -",
        examples=["proj_42"],
    ),
]
ProjectName = Annotated[
    str,
    AfterValidator(_app_name),
    Field(
        description=(
            "The app's name, used for the GitHub repository, the Supabase project and the "
            f"Vercel project: 2-{MAX_NAME} of a-z 0-9 and single hyphens, starting with a "
            "letter, ending with a letter or digit, not reserved"
        ),
        json_schema_extra={
            "minLength": 2,
            "maxLength": MAX_NAME,
            "pattern": r"^[a-z][a-z0-9-]*[a-z0-9]$",
        },
        examples=["shop-front"],
    ),
]
BuildDir = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_BUILD_DIR,
        description=(
            "The build directory, relative to FORGE_BUILDS_ROOT or absolute under it; it must "
            "exist, be a directory, and resolve (symlinks followed) inside the root"
        ),
        examples=["shop-front"],
    ),
]


ExposurePolicy = Annotated[
    Literal["warn", "fail"] | None,
    Field(
        description=(
            "Optional. What the runner does when the app exposes what it should not: warn "
            "(the runner's default when absent) or fail the deploy. Handed to the runner as "
            "FORGE_EXPOSURE_POLICY and kept with the deployment (a retry runs under it too)."
        ),
        examples=["fail"],
    ),
]


class CreateDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    project_id: ProjectId
    project_name: ProjectName
    build_dir: BuildDir
    exposure_policy: ExposurePolicy = None


class Urls(BaseModel):
    app: str | None
    repo: str | None
    database: str | None


class DeploymentOut(BaseModel):
    """`dispatcher.model.Deployment.public()`; never a secret."""

    id: str = Field(examples=["dep_0123456789abcdef01234567"])
    project_id: str
    project_name: str
    build_dir: str
    status: Status
    action: str = Field(description="deploy | teardown")
    attempt: int
    step: str | None
    urls: Urls
    health: dict[str, Any] | None
    error: str | None
    exit_code: int | None
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool
    exposure_policy: Literal["warn", "fail"] | None = Field(
        description="The runner's exposure policy this deploy asked for; null: the default"
    )


class DeploymentList(BaseModel):
    deployments: list[DeploymentOut] = Field(description="Newest first.")


class EventOut(BaseModel):
    """One stored event (`StoredEvent.public()`): an SSE `data:` or one JSON line."""

    id: int = Field(description="Rises by one per deployment across attempts; the SSE id.")
    attempt: int
    type: str
    ts: str
    seq: int | None = Field(description="The runner's own seq; null for dispatcher events.")
    payload: dict[str, Any]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    ok: bool
    store: str = Field(description='"ok", or why the store cannot be reached')
