"""The runner spends a provider's request budget evenly: pure decisions over a clock, then a real
deploy against a Supabase budget far smaller than the deploy's calls, which must end live
without one 429 (without pacing it runs into the limit at once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.pacing import Budget, Pacer, budget_from
from tests.support.runner import RunnerProcess
from tests.support.sandbox import SandboxProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"
NOW = 1_700_000_000.0


def test_a_comfortable_budget_costs_no_wait() -> None:
    assert Budget(120, 100, NOW + 30).wait(NOW) == 0.0
    assert Budget(120, 25, NOW + 30).wait(NOW) == 0.0  # above the reserve (a fifth: 24)


def test_below_the_reserve_each_call_waits_its_share_of_the_window() -> None:
    assert Budget(120, 5, NOW + 30).wait(NOW) == pytest.approx(5.0)  # 30 s / (5 + 1)
    assert Budget(120, 0, NOW + 30).wait(NOW) == pytest.approx(30.0)  # nothing left: the end
    assert Budget(120, 0, NOW - 1).wait(NOW) == 0.0  # the window is over


def test_reset_is_read_as_the_provider_states_it() -> None:
    supabase = budget_from({"x-ratelimit-limit": "120", "x-ratelimit-remaining": "3",
                            "x-ratelimit-reset": "15"}, NOW)  # fmt: skip
    assert supabase == Budget(120, 3, NOW + 15)  # seconds left in the window
    github = budget_from({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "9",
                          "x-ratelimit-reset": str(int(NOW) + 600)}, NOW)  # fmt: skip
    assert github == Budget(5000, 9, NOW + 600)  # epoch seconds
    assert budget_from({"x-ratelimit-remaining": "3"}, NOW) is None
    assert budget_from({"x-ratelimit-limit": "x", "x-ratelimit-remaining": "3",
                        "x-ratelimit-reset": "15"}, NOW) is None  # fmt: skip


def test_parallel_callers_are_charged_so_they_spread_out() -> None:
    pacer = Pacer(shared=True)
    headers = {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "2", "x-ratelimit-reset": "6"}
    pacer.observe("GET", "/v1/projects", headers, NOW)
    waits = [pacer.wait("GET", f"/v1/projects/{n}", NOW)[0] for n in range(3)]
    assert waits == pytest.approx([2.0, 3.0, 6.0])  # 6/(2+1), 6/(1+1), then the window's end


def test_per_endpoint_budgets_do_not_slow_each_other() -> None:
    pacer = Pacer(shared=False)
    low = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "60"}
    pacer.observe("POST", "/v13/deployments", low, NOW)
    assert pacer.wait("POST", "/v13/deployments", NOW)[0] == pytest.approx(60.0)
    assert pacer.wait("POST", "/v2/files", NOW) == (0.0, None)


@pytest.mark.clis
@pytest.mark.postgres
def test_a_deploy_on_a_budget_smaller_than_its_calls_paces_itself_without_a_429(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    limit = 4
    name = f"pace-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    start = len(sandbox.traffic())
    sandbox.admin("PUT", "supabase/rate-limit", {"limit": limit, "window_s": 2}).raise_for_status()
    sandbox.admin("DELETE", "supabase/rate-limit").raise_for_status()
    try:
        result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    finally:
        sandbox.admin("PUT", "supabase/rate-limit", {"limit": 120, "window_s": 60})
        sandbox.admin("DELETE", "supabase/rate-limit").raise_for_status()
    assert result.returncode == 0, result.explain()
    assert result.eof.payload["outcome"] == "live"
    management = [e for e in sandbox.traffic()[start:] if e["service"] == "supabase"]
    assert len(management) > limit, "the deploy fit in one window: the case proves nothing"
    refused = [f"{e['method']} {e['path']}" for e in management if e["status"] == 429]
    assert refused == []
