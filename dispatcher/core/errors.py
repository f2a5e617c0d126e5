"""The core's own errors: what the front door (`core.deployments.Deployments`) raises, and
what a store or launcher adapter raises in the core's words instead of its driver's.

The web layer turns each into one answer (404, 409, 422, 503); the CLI prints the message.
No message holds a secret or echoes a request's input at length.
"""

from __future__ import annotations


class UnknownDeployment(LookupError):
    """No deployment has this id."""


class Refused(Exception):
    """The deployment's state forbids the action (`core.policy`); `code` is stable (the API's
    error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Conflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class InvalidTransition(ValueError):
    """The deployment's status does not allow this change (e.g. requeue of a running one)."""


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


class StoreUnavailable(Exception):
    """The store does not answer for now (its PostgreSQL restarting, the disk of its SQLite
    file full): what it holds is still there. The store adapter raises this in place of its
    driver's error (chained: `from e`); the message says why, in the driver's words."""


class StoreStopped(RuntimeError):
    """The dispatcher stopped while its store (or its launcher's backend) was unavailable."""
