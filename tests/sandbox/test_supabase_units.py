"""Pure parts of the Supabase emulator, without a sandbox: the request budget with an injected
clock, the create-body validation, and the profile's `project_host`."""

from __future__ import annotations

import re

import pytest

from sandbox.supabase.errors import ApiError
from sandbox.supabase.profile import PROJECT_HOST
from sandbox.supabase.ratelimit import RateLimiter
from sandbox.supabase.regions import parse_create


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_counts_down_refuses_over_the_limit_and_reopens_after_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(now=clock, limit=120, window_s=60)
    decisions = [limiter.hit("t") for _ in range(120)]
    assert [d.remaining for d in decisions[:3]] == [119, 118, 117]
    assert all(d.allowed for d in decisions) and decisions[-1].remaining == 0
    clock.now += 45.2
    refused = limiter.hit("t")
    assert (refused.allowed, refused.remaining, refused.reset_s) == (False, 0, 15)
    assert refused.headers() == {
        "x-ratelimit-limit": "120",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "15",
    }
    assert limiter.hit("other").remaining == 119  # budgets are per token
    clock.now += 15
    reopened = limiter.hit("t")
    assert (reopened.allowed, reopened.remaining, reopened.reset_s) == (True, 119, 60)


def test_refused_calls_do_not_extend_the_window_and_reset_forgets_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(now=clock, limit=2, window_s=60)
    limiter.hit("t")
    limiter.hit("t")
    for _ in range(5):
        clock.now += 10
        assert not limiter.hit("t").allowed
    clock.now += 10.0
    assert limiter.hit("t").allowed
    limiter.hit("t")
    assert not limiter.hit("t").allowed
    limiter.reset()
    assert limiter.hit("t").remaining == 1


def test_create_body_takes_region_or_region_selection_and_rejects_the_rest() -> None:
    base = {"name": "n", "db_pass": "p", "organization_slug": "org-1"}
    assert parse_create({**base, "region": "sa-east-1"}).region == "sa-east-1"
    selected = {**base, "region_selection": {"type": "smartGroup", "code": "apac"}}
    assert parse_create(selected).region == "ap-southeast-1"
    assert parse_create(base).region == "us-east-1"
    for bad in (
        {**base, "extra": 1},
        {**base, "organization_slug": "bad slug"},
        {**base, "plan": "gold"},
        {**base, "kps_enabled": "yes"},
        {**base, "desired_instance_size": "huge"},
        {**base, "region_selection": {"type": "specific", "code": "us-east-1", "x": 1}},
        {**base, "db_pass": 5},
    ):
        with pytest.raises(ApiError) as caught:
            parse_create(bad)
        assert caught.value.status == 400


def test_project_host_passes_the_clis_check_but_can_never_be_looked_up() -> None:
    # The CLI's profile validation (hostname_rfc1123), from its bundle.
    rfc1123 = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9][a-zA-Z0-9-]{0,62})*?$")
    assert rfc1123.match(PROJECT_HOST)
    host = f"abcdefghijabcdefghij.{PROJECT_HOST}"
    labels = host.split(".")
    assert labels[-1].isdigit()  # WHATWG URL: read as IPv4, rejected -> fetch fails, no lookup
    assert any(label.endswith("-") for label in labels)  # Go: not a domain name -> no query
