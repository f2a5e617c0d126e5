"""The provider error model and retry policy as plain functions: no network, no real sleep."""

from __future__ import annotations

import json

import pytest
import requests

from runner.errors import AmbiguousError, FatalError, RetryableError
from runner.http import GITHUB_SECONDARY_LIMIT_WAIT_S, RetryPolicy, classify, retrying

NOW = 1_700_000_000.0


def response(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    r.headers.update(headers or {})
    return r


def test_success_is_no_error() -> None:
    assert classify("github", response(201), NOW) is None


def test_429_honours_retry_after_seconds_and_dates() -> None:
    error = classify("supabase", response(429, {"message": "slow"}, {"Retry-After": "7"}), NOW)
    assert isinstance(error, RetryableError) and error.delay == 7
    dated = response(429, {}, {"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"})
    error = classify("vercel", dated, NOW)
    assert isinstance(error, RetryableError) and error.delay == pytest.approx(10, abs=1)


def test_rate_limit_reset_headers_and_vercel_body() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW + 42))}
    error = classify("github", response(403, {"message": "API rate limit exceeded"}, headers), NOW)
    assert isinstance(error, RetryableError) and error.delay == 42
    body = {"error": {"code": "rate_limited", "message": "Too many", "limit": {"reset": NOW + 5}}}
    error = classify("vercel", response(429, body), NOW)
    assert isinstance(error, RetryableError) and error.delay == 5 and error.message == "Too many"


def test_supabase_reset_is_seconds_left_in_the_window() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "27"}
    error = classify("supabase", response(429, {"message": "Too many requests"}, headers), NOW)
    assert isinstance(error, RetryableError) and error.delay == 27


def test_github_secondary_limit_waits_at_least_a_minute_without_retry_after() -> None:
    body = {"message": "You have exceeded a secondary rate limit."}
    error = classify("github", response(403, body), NOW)
    assert isinstance(error, RetryableError) and error.delay == GITHUB_SECONDARY_LIMIT_WAIT_S
    plain_403 = classify("github", response(403, {"message": "Must have admin rights"}), NOW)
    assert isinstance(plain_403, FatalError) and plain_403.message == "Must have admin rights"


def test_5xx_is_retryable_but_ambiguous_for_creates() -> None:
    assert type(classify("supabase", response(503), NOW)) is RetryableError
    assert isinstance(classify("supabase", response(500), NOW, idempotent=False), AmbiguousError)


def test_other_4xx_is_fatal_with_the_providers_message() -> None:
    error = classify(
        "vercel", response(400, {"error": {"code": "bad_request", "message": "No"}}), NOW
    )
    assert isinstance(error, FatalError) and str(error) == "vercel 400: No"


def test_policy_waits_exponentially_unless_the_provider_says_and_scales() -> None:
    policy = RetryPolicy(base_s=1, max_s=10, scale=0.5)
    assert [policy.wait(None, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 5]
    assert policy.wait(RetryableError("x", 429, "m", delay=30), 1) == 15


def test_retrying_uses_the_injected_sleep_and_never_retries_ambiguous_or_fatal() -> None:
    slept: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RetryableError("github", 503, "busy", delay=2)
        return "ok"

    for attempt in retrying(RetryPolicy(), slept.append):
        with attempt:
            result = flaky()
    assert result == "ok" and slept == [2, 2]

    for kind in (AmbiguousError, FatalError):
        with pytest.raises(kind):
            for attempt in retrying(RetryPolicy(), slept.append):
                with attempt:
                    raise kind("x", 500, "m")
    assert slept == [2, 2]
