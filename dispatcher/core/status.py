"""What a deployment's events and its runner's end mean, decided by pure functions: no I/O, no
clock, no store.

- `fold(state, kind, payload) -> (state, [change])`: one runner event into what the dashboard
  shows (step, URLs, health: a `Patch`; a sealed value the project keeps: `Sealed`).
- `outcome(ending) -> Outcome`: how a deployment ended, for every way one ends: its runner is
  over (`RunnerEnded`: the runner's own `eof` when it wrote one, else why it stopped), it was
  cancelled before a runner started (`CancelledUnlaunched`), a restarted dispatcher found its
  runner gone (`RunnerGone`), or the dispatcher failed running it (`DispatcherFailed`).
  `Deployments.conclude` writes the `Outcome` and decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.core.ports import Exit
from dispatcher.model import TERMINAL, Patch, Status
from runner.checkpoints import SEALED_DB_PASSWORD
from runner.events import EventType

_URL_CHECKPOINTS: dict[str, Callable[[str], Patch]] = {
    "github.repo_url": lambda url: Patch(repo_url=url),
    "supabase.url": lambda url: Patch(database_url=url),
    "vercel.url": lambda url: Patch(app_url=url),
}
_RESULT_URLS = (("app", "app_url"), ("repo", "repo_url"), ("database", "database_url"))
_OUTCOMES = {
    "live": Status.LIVE,
    "unhealthy": Status.UNHEALTHY,
    "cancelled": Status.CANCELLED,
    "failed": Status.FAILED,
    "bad_input": Status.FAILED,
    "removed": Status.LIVE,
    "planned": Status.LIVE,
}
RETRY_RESUMES = "retry resumes from its checkpoints"


# ---- the fold of a runner's events -------------------------------------------------------------
@dataclass(frozen=True)
class Folded:
    """What the events of one attempt said so far."""

    step: str | None = None
    result: dict[str, Any] | None = None
    eof: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sealed:
    """A sealed checkpoint the runner wants back on the project's next attempt (opaque
    without the dispatcher's private key; kept apart from the deployment row)."""

    key: str
    value: str


Change = Patch | Sealed


def fold(state: Folded, kind: EventType, payload: dict[str, Any]) -> tuple[Folded, list[Change]]:
    """One runner event folded into the attempt's state, and the changes it makes."""
    if kind is EventType.STEP_STARTED:
        step = str(payload.get("step"))
        return replace(state, step=step), [Patch(step=step)]
    if kind is EventType.CHECKPOINT:
        key, value = str(payload.get("key")), payload.get("value")
        if not isinstance(value, str):
            return state, []
        if key == SEALED_DB_PASSWORD:
            return state, [Sealed(key, value)]
        url = _URL_CHECKPOINTS.get(key)
        return state, [url(value)] if url else []
    if kind is EventType.RESULT:
        raw_urls = payload.get("urls")
        urls: dict[str, Any] = raw_urls if isinstance(raw_urls, dict) else {}
        changes: dict[str, Any] = {
            column: urls[name] for name, column in _RESULT_URLS if isinstance(urls.get(name), str)
        }
        if isinstance(payload.get("health"), dict) and payload["health"]:
            changes["health"] = payload["health"]
        return replace(state, result=payload), [Patch(**changes)] if changes else []
    if kind is EventType.EOF:
        return replace(state, eof=payload), []
    return state, []


# ---- how a deployment ended ---------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A deployment's end: its terminal status, the error shown, the runner's exit code."""

    status: Status
    error: str | None = None
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.status not in TERMINAL:
            raise ValueError(f"an outcome is terminal, not {self.status.value}")


@dataclass(frozen=True)
class RunnerEnded:
    """An attempt whose runner is over: what its events said, how it exited, and what this
    dispatcher saw while it ran."""

    folded: Folded
    exit: Exit
    cancelled: bool = False  # this dispatcher's cancel stopped it
    timed_out: str | None = None  # the deadline or the idle timeout stopped it: why
    backend_outage: tuple[float, str] | None = None  # its backend away meanwhile: (s, why)
    backend: str = "launcher"  # the backend's name, in the log's words


@dataclass(frozen=True)
class CancelledUnlaunched:
    """Cancelled before any runner started: still queued, or claimed with its cancel already
    requested."""

    queued: bool


@dataclass(frozen=True)
class RunnerGone:
    """A restarted dispatcher found no runner for a deployment it had running."""


@dataclass(frozen=True)
class DispatcherFailed:
    """The dispatcher itself failed running the attempt (`error` is masked)."""

    error: str


Ending = RunnerEnded | CancelledUnlaunched | RunnerGone | DispatcherFailed


def outcome(ending: Ending) -> Outcome:
    """The one decision of how a deployment ended."""
    if isinstance(ending, RunnerEnded):
        return _runner_outcome(ending)
    if isinstance(ending, CancelledUnlaunched):
        where = "while queued" if ending.queued else "before it started"
        return Outcome(Status.CANCELLED, f"cancelled {where}")
    if isinstance(ending, RunnerGone):
        return Outcome(Status.FAILED, "lost: the runner disappeared while the dispatcher was down")
    return Outcome(Status.FAILED, f"dispatcher error: {ending.error}")


def _runner_outcome(ended: RunnerEnded) -> Outcome:
    """The runner's own `eof` when it wrote one, else the reason the process ended (cancelled,
    deadline or idle timeout, OOM, lost, exit code), told with the backend's outage when it
    had one."""
    code = ended.exit.code
    eof, result = ended.folded.eof, ended.folded.result
    if eof is not None:
        status = _OUTCOMES.get(str(eof.get("outcome")), Status.FAILED)
        error = None
        if status is not Status.LIVE and result is not None:
            error = result.get("error") or ("unhealthy" if status is Status.UNHEALTHY else None)
        if status is Status.CANCELLED and not ended.cancelled:  # a SIGTERM nobody here sent
            return Outcome(Status.FAILED, _stopped_from_outside(ended, error), code)
        return Outcome(status, error, code)
    if ended.cancelled:
        return Outcome(Status.CANCELLED, "cancelled", code)
    error = _without_eof(ended)
    if ended.backend_outage is not None:
        seconds, _ = ended.backend_outage
        error = (
            f"the {ended.backend} went away for {seconds:.1f} s mid-deploy and the runner's last"
            f" output was lost with it ({error}); {RETRY_RESUMES}"
        )
    return Outcome(Status.FAILED, error, code)


def _without_eof(ended: RunnerEnded) -> str:
    if ended.timed_out is not None:
        return ended.timed_out
    if ended.exit.reason == "oom-killed":
        return "the runner was OOM-killed"
    if ended.exit.reason == "lost" or ended.exit.code is None:
        return "lost: the runner is gone and left no result"
    reason = f" ({ended.exit.reason})" if ended.exit.reason else ""
    return f"the runner exited {ended.exit.code} without a final event{reason}"


def _stopped_from_outside(ended: RunnerEnded, said: str | None) -> str:
    """The error of a runner that stopped on a SIGTERM no cancel sent."""
    if ended.backend_outage is not None:
        seconds, _ = ended.backend_outage
        return (
            f"the {ended.backend} went away for {seconds:.1f} s mid-deploy (a restart or a crash)"
            f" and stopped the runner; {RETRY_RESUMES}"
        )
    return (
        f"the runner was stopped from outside the dispatcher ({said or 'SIGTERM'}); {RETRY_RESUMES}"
    )
