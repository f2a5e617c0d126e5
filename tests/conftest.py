"""Shared fixtures: a test-run PostgreSQL, a running sandbox, the real CLIs.

Everything here uses real parts. A missing dependency (PostgreSQL binaries, strace, the CLIs)
makes the fixture fail loudly; a skipped test fails the session (see pytest_sessionfinish).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.context import RunContext
from sandbox.postgres import ManagedCluster, free_port
from tests.support import runner as runner_support
from tests.support import secret_shapes
from tests.support.browser import browser  # noqa: F401 - fixture (tests/ui, tests/forgeboard)
from tests.support.clis import REPO, CliRunner
from tests.support.sandbox import SandboxProcess


def _reachable_by_others(path: Path) -> bool:
    return all(parent.stat().st_mode & 0o001 for parent in [path, *path.parents] if parent.exists())


# Test state must be reachable by the `postgres` user (initdb refuses root), so not under
# /tmp/pytest-of-root (0700): in the repo when its folders allow it, else under /var/tmp.
TEST_ROOT = (
    REPO / ".forge-test"
    if _reachable_by_others(REPO)
    else Path("/var/tmp/forge-deploy-tests") / hashlib.sha256(bytes(REPO)).hexdigest()[:12]
)


@pytest.fixture(scope="session")
def test_root() -> Path:
    run_dir = TEST_ROOT / f"run-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in (TEST_ROOT, run_dir):
        path.chmod(0o755)
    return run_dir


@pytest.fixture(scope="session")
def postgres_url(test_root: Path) -> Iterator[str]:
    """A PostgreSQL 15 cluster owned by this test run, on 127.0.0.1, superuser with password."""
    cluster = ManagedCluster(test_root / "pg", "127.0.0.1", free_port("127.0.0.1"))
    server = cluster.start()
    password = secrets.token_hex(12)
    with server.admin() as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
    try:
        yield f"postgresql://postgres:{password}@127.0.0.1:{server.port}/postgres"
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sandbox(test_root: Path, postgres_url: str) -> Iterator[SandboxProcess]:
    handle = SandboxProcess(test_root / "sandbox", postgres_url)
    handle.start()
    try:
        yield handle
        _assert_no_secret_in_runner_output(handle)
    finally:
        handle.stop()
        leaks = handle.loopback_violations()
        assert not leaks, "the sandbox reached beyond loopback:\n" + "\n".join(leaks[:20])


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        handle: SandboxProcess = request.getfixturevalue("sandbox")
        if handle.process is not None:
            handle.set_faults([])
            handle.set_time_scale(handle.time_scale)
            # Supabase's 120/min budget is shared by the whole session: fresh windows per test.
            handle.admin("DELETE", "supabase/rate-limit").raise_for_status()


@pytest.fixture
def cli(sandbox: SandboxProcess, tmp_path: Path) -> CliRunner:
    home = tmp_path / "home"
    home.mkdir()
    return CliRunner(sandbox.info, home)


def _assert_no_secret_in_runner_output(handle: SandboxProcess) -> None:
    """No token, database password or API key of this session in anything a runner printed, and
    nothing shaped like a secret key, an access token or a service-role JWT."""
    info = handle.info
    known = [info["github"]["token"], info["supabase"]["token"], info["vercel"]["token"]]
    resources = handle.resources()
    for project in resources["supabase"]["projects"]:
        known.append(project.get("db_pass", ""))
        known.extend(project.get("api_keys", []))
    secrets_ = [s for s in known if s and len(s) >= 8]
    captured = "\n".join(runner_support.CAPTURED)
    leaked = [f"{s[:4]}...({len(s)} chars)" for s in secrets_ if s in captured]
    leaked += secret_shapes.found(captured)  # a key of a project deleted since, by its shape
    assert not leaked, f"secrets reached runner output: {leaked}"


@pytest.fixture
def runner_env(sandbox: SandboxProcess) -> dict[str, str]:
    """What `forge-sandbox env` prints, plus the test knobs (fast polling, tiny backoff)."""
    return runner_support.runner_env(sandbox)


@pytest.fixture
def run_context(runner_env: dict[str, str]) -> RunContext:
    """An in-process RunContext against the sandbox; events in `run_context.events`' buffer."""
    ctx, _ = runner_support.make_context(runner_env)
    return ctx


@pytest.fixture
def forge_runner(runner_env: dict[str, str], tmp_path: Path) -> runner_support.RunnerProcess:
    """`forge-runner` processes against the sandbox, under the loopback audit."""
    return runner_support.RunnerProcess(runner_env, tmp_path)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [tool for tool in ("git", "gh", "strace") if shutil.which(tool) is None]
    for name in ("supabase", "vercel"):
        if not (REPO / "node_modules" / ".bin" / name).exists():
            missing.append(f"node_modules/.bin/{name}")
    if missing:
        raise pytest.UsageError(
            f"missing test dependencies: {missing} — run the README's test command (scripts/test)"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Conformance tests replay the whole session's traffic, so they run last."""
    items.sort(key=lambda item: item.get_closest_marker("conformance") is not None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is not a passing test: fail the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; skips are not allowed")
        session.exitstatus = 1
