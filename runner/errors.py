"""One exception tree for the runner: what went wrong, and what to do next.

`BadInput` is the caller's mistake (exit 2, nothing created). `ProviderError`s come from one
mapping per provider (`runner.http`): `RetryableError` carries the delay the provider asked for,
`FatalError` the provider's own message. `NotOurs` is a resource that exists under our name but
without our marker: we never adopt or delete it.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Base of every error the runner reports as an outcome rather than a crash."""


class BadInput(RunnerError):
    """Configuration, app name or build directory is unusable; nothing was created."""


class Cancelled(RunnerError):
    """SIGTERM arrived; the runner stops at the next safe point."""


class ProviderError(RunnerError):
    def __init__(self, provider: str, status: int | None, message: str) -> None:
        self.provider = provider
        self.status = status
        self.message = message
        where = f"{provider} {status}" if status is not None else provider
        super().__init__(f"{where}: {message}")


class RetryableError(ProviderError):
    """Worth trying again: 429, 5xx, a dropped connection. `delay` is the provider's wish."""

    def __init__(
        self, provider: str, status: int | None, message: str, delay: float | None = None
    ) -> None:
        super().__init__(provider, status, message)
        self.delay = delay


class AmbiguousError(RetryableError):
    """A non-idempotent call whose outcome is unknown (timeout, reset): look before retrying."""


class FatalError(ProviderError):
    """A 4xx that retrying cannot fix; the message is the provider's."""


class NotOurs(FatalError):
    """A resource with our name that forge-deploy did not create."""


class MissingPermissions(FatalError):
    """A scoped access token lacks fine-grained permissions the call needs (Supabase answers 403
    with `missing_permissions`). Retrying cannot help: a token with them can. `purpose` says
    what forge-deploy needed the call for, once the client that made it knows."""

    def __init__(
        self, provider: str, permissions: list[str], operation: str, purpose: str = ""
    ) -> None:
        self.permissions = permissions
        self.operation = operation
        self.purpose = purpose
        needs = f"to {purpose} ({operation})" if purpose else f"for {operation}"
        names = ", ".join(permissions)
        plural = "permissions" if len(permissions) > 1 else "permission"
        super().__init__(
            provider,
            403,
            f"the access token lacks the {plural} {names}, which forge-deploy needs {needs}; "
            f"use a token that has {names}",
        )

    def needed_to(self, purpose: str) -> MissingPermissions:
        return MissingPermissions(self.provider, self.permissions, self.operation, purpose)


class StepFailed(RunnerError):
    """A step ended in failure for a reason that is not a provider answer (e.g. a migration)."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(message)
