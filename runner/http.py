"""HTTP to the providers: one error model, one retry policy, sleeps injected.

Every answer passes through `classify`, which maps it to nothing (success or an expected status),
`RetryableError(delay)` (429, 5xx, GitHub's primary and secondary rate limits; the delay from
`Retry-After`, `x-ratelimit-reset` or Vercel's `error.limit.reset`) or `FatalError` with the
provider's own message. Connection failures are retryable; for a call that is not idempotent
they are `AmbiguousError`s, which the caller resolves by looking before it creates again
(`runner.ensure`). The decision (retry? how long?) is pure; the sleep is injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
import tenacity

from runner.errors import (
    AmbiguousError,
    FatalError,
    MissingPermissions,
    ProviderError,
    RetryableError,
)
from runner.pacing import Pacer, reset_in

log = logging.getLogger("forge.runner.http")

Sleep = Callable[[float], None]
Clock = Callable[[], float]

GITHUB_SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub: "wait at least one minute" without retry-after
USER_AGENT = "forge-deploy-runner/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_s: float = 1.0
    max_s: float = 60.0
    scale: float = 1.0  # multiplies every wait (FORGE_BACKOFF_SCALE)

    def wait(self, error: BaseException | None, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1`: the provider's wish, else exponential."""
        delay = getattr(error, "delay", None)
        if delay is None:
            delay = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return max(0.0, float(delay)) * self.scale


def _transient(error: BaseException) -> bool:
    """Retry in place: retryable and not ambiguous (an ambiguous create is re-looked first)."""
    return isinstance(error, RetryableError) and not isinstance(error, AmbiguousError)


def retrying(
    policy: RetryPolicy,
    sleep: Sleep,
    retry_if: Callable[[BaseException], bool] = _transient,
) -> tenacity.Retrying:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.wait(error, state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying after %s (attempt %d)", error, state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if),
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )


def _seconds_until(header: str | None, now: float) -> float | None:
    """`Retry-After` (seconds or HTTP date) as seconds from now."""
    if header is None:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - now)
    except (TypeError, ValueError):
        return None


def provider_message(provider: str, response: requests.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for key in ("message", "error", "msg"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return f"HTTP {response.status_code}"


def _rate_limit_delay(provider: str, response: requests.Response, now: float) -> float | None:
    headers = response.headers
    delay = _seconds_until(headers.get("retry-after"), now)
    if delay is not None:
        return delay
    if headers.get("x-ratelimit-remaining") == "0":
        delay = reset_in(headers.get("x-ratelimit-reset"), now)
        if delay is not None:
            return delay
    if provider == "vercel":
        try:
            limit = response.json()["error"]["limit"]
            return reset_in(limit.get("reset"), now)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    return None


def _missing_permissions(response: requests.Response) -> list[str] | None:
    """The `missing_permissions` of a scoped token's 403 (Supabase, since 2026-09-28)."""
    try:
        body = response.json()
    except ValueError:
        return None
    listed = body.get("missing_permissions") if isinstance(body, dict) else None
    if isinstance(listed, list) and listed and all(isinstance(p, str) for p in listed):
        return [str(p) for p in listed]
    return None


def _operation(response: requests.Response) -> str:
    """`METHOD /path` of the request an answer belongs to (no query: it may carry anything)."""
    request = response.request
    if request is None:
        return "the call"
    path = (request.path_url or "/").partition("?")[0]
    return f"{request.method} {path}"


def classify(
    provider: str, response: requests.Response, now: float, idempotent: bool = True
) -> ProviderError | None:
    """The error an answer means, or None for success. Pure: no I/O, no sleeping."""
    status = response.status_code
    if status < 400:
        return None
    if status == 403:
        lacking = _missing_permissions(response)
        if lacking:
            return MissingPermissions(provider, lacking, _operation(response))
    message = provider_message(provider, response)
    if status == 429:
        return RetryableError(provider, status, message, _rate_limit_delay(provider, response, now))
    if provider == "github" and status == 403:
        if response.headers.get("x-ratelimit-remaining") == "0":
            return RetryableError(
                provider, status, message, _rate_limit_delay(provider, response, now)
            )
        if "secondary rate limit" in message.lower() or "retry-after" in response.headers:
            delay = _seconds_until(response.headers.get("retry-after"), now)
            return RetryableError(
                provider, status, message, GITHUB_SECONDARY_LIMIT_WAIT_S if delay is None else delay
            )
        accepted = response.headers.get("x-accepted-github-permissions")
        if accepted:  # a fine-grained token: the permission sets that would do, `;`-separated
            sets = [part.strip() for part in accepted.split(";") if part.strip()]
            return MissingPermissions(provider, sets, _operation(response))
    if status >= 500:
        delay = _seconds_until(response.headers.get("retry-after"), now)
        kind = RetryableError if idempotent else AmbiguousError
        return kind(provider, status, message, delay)
    return FatalError(provider, status, message)


def new_session(
    token: str, ca_file: Path | None, headers: dict[str, str] | None = None
) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})
    session.headers.update(headers or {})
    session.verify = str(ca_file) if ca_file else True
    session.trust_env = False  # no proxy or netrc from the environment decides where tokens go
    return session


class ProviderHttp:
    """Calls to one provider's API: base URL, session, timeout, retries."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        session: requests.Session,
        policy: RetryPolicy,
        sleep: Sleep = time.sleep,
        timeout_s: float = 30.0,
        clock: Clock = time.time,
        default_params: dict[str, str] | None = None,
        pacer: Pacer | None = None,
        pace_sleep: Sleep | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.policy = policy
        self.sleep = sleep
        self.timeout_s = timeout_s
        self.clock = clock
        self.default_params = default_params or {}
        self.pacer = pacer
        self.pace_sleep = pace_sleep or sleep  # the provider's budget passes in real time

    def _pace(self, method: str, path: str) -> None:
        if self.pacer is None:
            return
        delay, budget = self.pacer.wait(method, path, self.clock())
        if delay > 0 and budget is not None:
            log.info(
                "%s %s %s: %d of %d calls left in this window, waiting %.1f s",
                self.provider,
                method,
                path,
                budget.remaining,
                budget.limit,
                delay,
            )
            self.pace_sleep(delay)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    def once(
        self,
        method: str,
        path: str,
        *,
        accept: Collection[int] = (),
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One attempt: the response if it is a success or in `accept`, else the mapped error."""
        params = {**self.default_params, **(kwargs.pop("params", None) or {})}
        self._pace(method, path)
        try:
            response = self.session.request(
                method, self.url(path), params=params, timeout=(10.0, self.timeout_s), **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            kind = RetryableError if idempotent else AmbiguousError
            raise kind(self.provider, None, f"{method} {path}: {type(e).__name__}") from e
        log.debug("%s %s %s -> %d", self.provider, method, path, response.status_code)
        if response.status_code not in accept:
            error = classify(self.provider, response, self.clock(), idempotent)
            if error is not None:
                raise error  # a refusal's wait is the retry policy's, not the pacer's
        if self.pacer is not None:
            self.pacer.observe(method, path, response.headers, self.clock())
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: Collection[int] = (),
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """With retries for transient errors; an ambiguous outcome is raised to the caller."""
        for attempt in retrying(self.policy, self.sleep):
            with attempt:
                return self.once(method, path, accept=accept, idempotent=idempotent, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()
