"""What the Kubernetes launcher is configured with, read once at start from `FORGE_K8S_*` and
`FORGE_BUNDLE_*` (`dispatcher.settings.load` calls `kubernetes_settings_from_env` when
`FORGE_LAUNCHER=kubernetes`), validated with errors naming the variable. No Kubernetes client is
imported here."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.bundles import MAX_BUNDLE_BYTES, MIN_SECRET_BYTES

MAX_NAME = 63  # a Job's name becomes a label value of its pods
NAME_OK = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
LOG_STREAMS = ("All", "Stdout")


@dataclass(frozen=True)
class Resources:
    """Requests and limits of the runner container (Kubernetes quantities) and the size limits
    of its emptyDirs (disk-backed; they count against ephemeral storage)."""

    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    ephemeral_request: str = "1Gi"
    ephemeral_limit: str = "4Gi"
    build_size: str = "512Mi"  # the unpacked bundle
    tmp_size: str = "1Gi"  # /tmp: the runner's work copy of the build
    work_size: str = "256Mi"  # /work, the working directory
    home_size: str = "256Mi"  # HOME: the CLIs' configuration and caches


@dataclass(frozen=True)
class JobSettings:
    """Where and how deploy Jobs run; the defaults are the documented production values."""

    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    service_account: str | None = None  # None: the namespace's default (its token not mounted)
    ttl_after_finished_s: int = 86400  # a safety net: the dispatcher removes Jobs it has read
    grace_s: int = 30  # terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this
    resources: Resources = field(default_factory=Resources)
    fetch_python: str = "/opt/forge/venv/bin/python"  # the image's Python, for FETCH_SCRIPT
    bundle_max_bytes: int = MAX_BUNDLE_BYTES
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME_OK.match(self.namespace) or len(self.namespace) > MAX_NAME:
            raise ValueError(f"namespace {self.namespace!r} is not a valid Kubernetes name")
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"image {self.image!r} is malformed")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"image pull policy {self.image_pull_policy!r}: expected Always, IfNotPresent"
                " or Never"
            )
        if self.service_account is not None and not NAME_OK.match(self.service_account):
            raise ValueError(f"service account {self.service_account!r} is not a valid name")
        if self.ttl_after_finished_s < 0 or self.grace_s < 0:
            raise ValueError("ttl_after_finished_s and grace_s must not be negative")
        for name, value in vars(self.resources).items():
            if not _QUANTITY.match(value):
                raise ValueError(f"resources.{name} {value!r} is not a Kubernetes quantity")


def job_settings_from_env(environ: Mapping[str, str], image: str, grace_s: int) -> JobSettings:
    """`JobSettings` from `FORGE_K8S_*` variables (errors name the variable): NAMESPACE
    (required; k8s/deployment.yaml sets it from the pod's own namespace), SERVICE_ACCOUNT,
    IMAGE_PULL_POLICY, TTL_S, CPU_REQUEST, CPU_LIMIT, MEMORY_REQUEST, MEMORY_LIMIT.
    `image`: FORGE_RUNNER_IMAGE; `grace_s`: the cancel grace (terminationGracePeriodSeconds)."""
    namespace = environ.get("FORGE_K8S_NAMESPACE", "")
    if not namespace:
        raise ValueError("FORGE_K8S_NAMESPACE is not set: the namespace of the deploy Jobs")
    resources = Resources()
    overrides = {
        "cpu_request": "FORGE_K8S_CPU_REQUEST",
        "cpu_limit": "FORGE_K8S_CPU_LIMIT",
        "memory_request": "FORGE_K8S_MEMORY_REQUEST",
        "memory_limit": "FORGE_K8S_MEMORY_LIMIT",
    }
    for attribute, variable in overrides.items():
        value = environ.get(variable)
        if value:
            if not _QUANTITY.match(value):
                raise ValueError(f"{variable} is malformed: expected a quantity like 2Gi or 500m")
            resources = dataclasses.replace(resources, **{attribute: value})
    ttl = environ.get("FORGE_K8S_TTL_S") or "86400"
    if not ttl.isdigit():
        raise ValueError(f"FORGE_K8S_TTL_S is malformed: expected whole seconds, got {ttl!r}")
    try:
        return JobSettings(
            namespace=namespace,
            image=image,
            image_pull_policy=environ.get("FORGE_K8S_IMAGE_PULL_POLICY") or "IfNotPresent",
            service_account=environ.get("FORGE_K8S_SERVICE_ACCOUNT") or None,
            ttl_after_finished_s=int(ttl),
            grace_s=grace_s,
            resources=resources,
        )
    except ValueError as e:
        raise ValueError(f"FORGE_K8S_* settings: {e}") from e


@dataclass(frozen=True)
class KubernetesSettings:
    """The Jobs, and how their pods reach this dispatcher for the build (the bundle URL)."""

    job: JobSettings
    bundle_base_url: str  # e.g. http://forge-dispatcher:8080
    bundle_secret: bytes = field(repr=False)  # the same on every replica
    bundle_ttl_s: float = 1800.0
    log_stream: str = "All"  # All | Stdout (PodLogsQuerySplitStreams)
    pull_grace_s: float = 120.0

    def __post_init__(self) -> None:
        if self.log_stream not in LOG_STREAMS:
            raise ValueError(f"log_stream must be All or Stdout, got {self.log_stream!r}")
        if not self.bundle_base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"bundle_base_url must be an http(s) URL, got {self.bundle_base_url!r}"
            )
        if len(self.bundle_secret) < MIN_SECRET_BYTES:
            raise ValueError(f"bundle_secret must be at least {MIN_SECRET_BYTES} bytes")


def kubernetes_settings_from_env(
    environ: Mapping[str, str], *, image: str, grace_s: float
) -> KubernetesSettings:
    """`FORGE_LAUNCHER=kubernetes`: `job_settings_from_env` plus FORGE_BUNDLE_BASE_URL (how
    pods reach this dispatcher, e.g. http://forge-dispatcher:8080), FORGE_BUNDLE_SECRET (at least
    32 characters, the same on every replica), FORGE_BUNDLE_TTL_S (1800), FORGE_K8S_LOG_STREAM
    (All | Stdout), FORGE_K8S_PULL_GRACE_S (120). Errors are ValueErrors naming the variable."""
    job = job_settings_from_env(environ, image, max(0, math.ceil(grace_s)))
    base_url = environ.get("FORGE_BUNDLE_BASE_URL", "")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(
            "FORGE_BUNDLE_BASE_URL is not set or malformed: the http(s) URL deploy pods reach"
            " this dispatcher at (e.g. http://forge-dispatcher:8080)"
        )
    secret = environ.get("FORGE_BUNDLE_SECRET", "")
    if len(secret) < 32:
        raise ValueError("FORGE_BUNDLE_SECRET is not set or shorter than 32 characters")
    numbers = {}
    for variable, default in (("FORGE_BUNDLE_TTL_S", 1800.0), ("FORGE_K8S_PULL_GRACE_S", 120.0)):
        raw = environ.get(variable) or str(default)
        try:
            numbers[variable] = float(raw)
        except ValueError:
            raise ValueError(f"{variable} is malformed: expected seconds, got {raw!r}") from None
    log_stream = environ.get("FORGE_K8S_LOG_STREAM") or "All"
    if log_stream not in LOG_STREAMS:
        raise ValueError(f"FORGE_K8S_LOG_STREAM is malformed: All or Stdout, got {log_stream!r}")
    return KubernetesSettings(
        job=job,
        bundle_base_url=base_url,
        bundle_secret=secret.encode(),
        bundle_ttl_s=numbers["FORGE_BUNDLE_TTL_S"],
        log_stream=log_stream,
        pull_grace_s=numbers["FORGE_K8S_PULL_GRACE_S"],
    )
