"""The sandbox as a whole: announcement, env, restart survival, faults, admin, shutdown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.sandbox import SandboxProcess


def _gh(sandbox: SandboxProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    info = sandbox.info["github"]
    return requests.request(
        method,
        f"{info['api']}{path}",
        headers={"Authorization": f"Bearer {info['token']}"},
        verify=sandbox.ca_file,
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )


def _repo_names(sandbox: SandboxProcess) -> set[str]:
    return {repo["name"] for repo in sandbox.resources()["github"]["repos"]}


def test_announcement_names_every_endpoint_and_each_accepts_connections(
    sandbox: SandboxProcess,
) -> None:
    info = sandbox.info
    for key in ("api", "git", "host", "ca_file", "token", "org"):
        assert info["github"][key]
    for key in ("api", "token", "org", "profile_file"):
        assert info["supabase"][key]
    assert info["supabase"]["token"].startswith("sbp_") and len(info["supabase"]["token"]) == 44
    for key in ("api", "token", "team"):
        assert info["vercel"][key]
    assert Path(info["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for url in (
        info["github"]["api"],
        info["supabase"]["api"],
        info["vercel"]["api"],
        info["apps"],
    ):
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            pass


def test_env_command_points_at_the_running_sandbox(sandbox: SandboxProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "env", "--state-dir", str(sandbox.state_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    info = sandbox.info
    assert env["GH_TOKEN"] == info["github"]["token"]
    assert env["GH_ORG"] == info["github"]["org"]
    assert env["FORGE_GITHUB_API_URL"] == info["github"]["api"]
    assert env["SUPABASE_ACCESS_TOKEN"] == info["supabase"]["token"]
    assert env["SUPABASE_ORG_ID"] == info["supabase"]["org"]
    assert env["FORGE_SUPABASE_API_URL"] == info["supabase"]["api"]
    assert env["VERCEL_TOKEN"] == info["vercel"]["token"]
    assert env["VERCEL_ORG_ID"] == info["vercel"]["team"]
    assert env["FORGE_VERCEL_API_URL"] == info["vercel"]["api"]
    assert env["FORGE_CA_FILE"] == info["ca_file"]


def test_resources_command_prints_one_json_document(sandbox: SandboxProcess, unique: str) -> None:
    assert (
        _gh(
            sandbox,
            "POST",
            f"/orgs/{sandbox.info['github']['org']}/repos",
            json={"name": f"res-{unique}", "private": True},
        ).status_code
        == 201
    )
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "resources", "--state-dir", str(sandbox.state_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(result.stdout)
    assert set(document) >= {"github", "supabase", "vercel"}
    assert f"res-{unique}" in {repo["name"] for repo in document["github"]["repos"]}


def test_admin_requires_the_admin_token(sandbox: SandboxProcess) -> None:
    response = requests.get(
        f"{sandbox.info['admin']['url']}/faults", verify=sandbox.ca_file, timeout=10
    )
    assert response.status_code == 401


def test_bad_fault_rules_are_refused_with_the_field_named(sandbox: SandboxProcess) -> None:
    response = sandbox.admin("PUT", "faults", [{"service": "github", "action": "explode"}])
    assert response.status_code == 400
    assert "action" in response.json()["error"]
    assert sandbox.admin("GET", "faults").json() == []


def test_status_fault_answers_exactly_n_times_with_retry_after(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "GET",
                "path": r"^/api/v3/user$",
                "action": "status",
                "status": 429,
                "retry_after": 7,
                "times": 2,
            }
        ]
    )
    first, second, third = (_gh(sandbox, "GET", "/user") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "7"
    assert isinstance(first.json()["message"], str)  # GitHub's error shape


def test_status_fault_sends_extra_headers_a_rate_limited_403(sandbox: SandboxProcess) -> None:
    reset = "1700000000"
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "GET",
                "path": r"^/api/v3/user$",
                "action": "status",
                "status": 403,
                "headers": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                "times": 1,
            }
        ]
    )
    first, second = (_gh(sandbox, "GET", "/user") for _ in range(2))
    assert (first.status_code, second.status_code) == (403, 200)
    assert first.headers["x-ratelimit-remaining"] == "0"
    assert first.headers["x-ratelimit-reset"] == reset
    assert second.headers.get("x-ratelimit-remaining") != "0"
    refused = sandbox.admin(
        "PUT", "faults", [{"service": "github", "action": "status", "headers": {"a": 1}}]
    )
    assert refused.status_code == 400 and "headers" in refused.json()["error"]


def test_status_fault_uses_each_providers_error_shape(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(
        [
            {"service": "vercel", "path": "^/v2/user$", "action": "status", "status": 500},
            {
                "service": "supabase",
                "path": "^/v1/organizations$",
                "action": "status",
                "status": 500,
            },
        ]
    )
    vercel = requests.get(
        f"{sandbox.info['vercel']['api']}/v2/user",
        headers={"Authorization": f"Bearer {sandbox.info['vercel']['token']}"},
        timeout=10,
    )
    supabase = requests.get(
        f"{sandbox.info['supabase']['api']}/v1/organizations",
        headers={"Authorization": f"Bearer {sandbox.info['supabase']['token']}"},
        timeout=10,
    )
    assert vercel.status_code == 500 and set(vercel.json()["error"]) >= {"code", "message"}
    assert supabase.status_code == 500 and isinstance(supabase.json()["message"], str)


def test_reset_fault_drops_the_connection(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(
        [{"service": "github", "path": "^/api/v3/user$", "action": "reset", "times": 1}]
    )
    with pytest.raises(requests.ConnectionError):
        _gh(sandbox, "GET", "/user")
    assert _gh(sandbox, "GET", "/user").status_code == 200


def test_delay_fault_still_serves_the_call(sandbox: SandboxProcess) -> None:
    sandbox.set_faults(
        [
            {
                "service": "github",
                "path": "^/api/v3/user$",
                "action": "delay",
                "delay_s": 0.2,
                "times": 1,
            }
        ]
    )
    assert _gh(sandbox, "GET", "/user").status_code == 200
    assert sandbox.admin("GET", "faults").json()[0]["hits"] == 1


def test_hold_fault_serves_the_call_once_the_rule_is_taken_out(sandbox: SandboxProcess) -> None:
    rule = {"service": "github", "path": "^/api/v3/user$", "action": "hold", "times": 1}
    sandbox.set_faults([rule])
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(_gh, sandbox, "GET", "/user")
        while sandbox.admin("GET", "faults").json()[0]["hits"] == 0:
            time.sleep(0.02)
        with pytest.raises(FuturesTimeout):  # held while the rule is in the book
            call.result(timeout=0.5)
        sandbox.set_faults([])
        assert call.result(timeout=10).status_code == 200


def test_timeout_after_success_creates_although_the_client_never_hears(
    sandbox: SandboxProcess, unique: str
) -> None:
    org = sandbox.info["github"]["org"]
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": f"^/api/v3/orgs/{org}/repos$",
                "action": "timeout_after_success",
                "times": 1,
            }
        ]
    )
    with pytest.raises(requests.Timeout):
        _gh(
            sandbox,
            "POST",
            f"/orgs/{org}/repos",
            json={"name": f"amb-{unique}", "private": True},
            timeout=3,
        )
    assert f"amb-{unique}" in _repo_names(sandbox)
    again = _gh(sandbox, "POST", f"/orgs/{org}/repos", json={"name": f"amb-{unique}"})
    assert again.status_code == 422  # a retried create meets the repo the lost answer made


def test_time_scale_can_change_on_a_running_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.set_time_scale(0.5)
    assert sandbox.admin("GET", "time-scale").json() == {"scale": 0.5}
    assert sandbox.admin("PUT", "time-scale", {"scale": -1}).status_code == 400


def test_state_survives_a_restart_on_the_same_ports(sandbox: SandboxProcess, unique: str) -> None:
    org = sandbox.info["github"]["org"]
    assert _gh(sandbox, "POST", f"/orgs/{org}/repos", json={"name": f"keep-{unique}"}).ok
    before = sandbox.info
    after = sandbox.restart()
    assert after["github"]["api"] == before["github"]["api"]
    assert after["github"]["token"] == before["github"]["token"]
    assert f"keep-{unique}" in _repo_names(sandbox)


def test_malformed_fault_file_is_an_error_naming_the_problem(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"service": "gitlab", "action": "status"}]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.cli",
            "serve",
            "--state-dir",
            str(tmp_path / "state"),
            "--faults",
            str(faults),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "service" in result.stderr and "gitlab" in result.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.postgres
def test_own_cluster_starts_and_sigterm_leaves_no_process(test_root: Path) -> None:
    state = test_root / "own-cluster"
    handle = SandboxProcess(state, postgres_url=None)
    info = handle.start()
    try:
        port = info["postgres"]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        assert handle.stop() == 0
    deadline = time.monotonic() + 30
    while _processes_using(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(state) == []


def _processes_using(state: Path) -> list[str]:
    result = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [
        line for line in result.stdout.splitlines() if str(state) in line and "ps -eo" not in line
    ]


@pytest.mark.postgres
def test_demo_the_readme_main_command_shows_every_provider_answering(test_root: Path) -> None:
    # scripts/run is bootstrap + exactly this command.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.cli",
            "demo",
            "--once",
            "--state-dir",
            str(test_root / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for service in ("github", "supabase", "vercel"):
        assert any(
            line.startswith("ok ") and service in line for line in result.stderr.splitlines()
        ), result.stderr
    assert json.loads(result.stdout)["apps"].startswith("https://127.0.0.1:")
    assert _processes_using(test_root / "demo") == []


def test_recorded_traffic_holds_no_secret_values(sandbox: SandboxProcess, unique: str) -> None:
    info = sandbox.info["supabase"]
    password = f"pw-{unique}-" + "s" * 24
    auth = {"Authorization": f"Bearer {info['token']}"}
    sandbox.set_time_scale(0)  # keys readable at once (deadlines are fixed at create)
    created = requests.post(
        f"{info['api']}/v1/projects",
        headers=auth,
        json={
            "name": f"sec-{unique}",
            "organization_slug": info["org"],
            "db_pass": password,
            "region": "us-east-1",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    keys = requests.get(
        f"{info['api']}/v1/projects/{created.json()['ref']}/api-keys",
        params={"reveal": "true"},
        headers=auth,
        timeout=30,
    ).json()
    secrets = [password, *(key["api_key"] for key in keys if key.get("api_key"))]
    assert len(secrets) > 1
    log = (sandbox.state_dir / "traffic.jsonl").read_text()
    assert f"sec-{unique}" in log  # the exchange was recorded ...
    for secret in secrets:
        assert secret not in log  # ... without its secrets
    assert info["token"] not in log and sandbox.info["github"]["token"] not in log


@pytest.mark.postgres
def test_two_serves_on_one_new_state_dir_one_runs_the_other_names_the_lock(
    test_root: Path, postgres_url: str, unique: str
) -> None:
    state = test_root / f"two-serves-{unique}"
    argv = [sys.executable, "-m", "sandbox.cli", "serve", "--state-dir", str(state)]
    argv += ["--postgres-url", postgres_url]
    started = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        # The loser exits at once; the winner runs until told to stop.
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [p for p in started if p.poll() is not None]
        assert len(losers) == 1, "both sandboxes started, or neither ended"
        (winner,) = [p for p in started if p not in losers]
        loser = losers[0]
        assert loser.returncode != 0
        assert loser.stderr is not None
        assert "another `forge-sandbox serve`" in loser.stderr.read()
        assert winner.stdout is not None
        announced = json.loads(winner.stdout.readline())
        kept = json.loads((state / "sandbox.json").read_text())
        assert kept["github_token"] == announced["github"]["token"]
        assert kept["ports"]["github"] == urlsplit(announced["github"]["api"]).port
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=60)
