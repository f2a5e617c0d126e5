"""The kit's TypeScript: `tsc --noEmit --strict` on integrations/forgeboard, and deploy.ts run
by node's test runner (compiled with the pinned tsc, supabase-js from npm) against a real
dispatcher (with its status mirror) and the sandbox's dashboard project. The Node test's
exit status is this test's verdict; its output is in the failure message."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.model import TERMINAL
from tests.dispatcher.conftest import RunningDispatcher, start_dispatcher  # noqa: F401 - fixture
from tests.forgeboard.conftest import KIT, Dashboard, add_project
from tests.support.clis import REPO, CliRunner

pytestmark = [pytest.mark.clis, pytest.mark.postgres]
NODE_TESTS = REPO / "tests" / "forgeboard" / "node"


def test_the_kit_type_checks_strictly(cli: CliRunner) -> None:
    result = cli.run(["tsc", "--noEmit", "--strict", "-p", str(KIT)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_action_against_the_dispatcher_and_the_dashboard(
    cli: CliRunner,
    dashboard: Dashboard,
    start_dispatcher: Callable[..., RunningDispatcher],  # noqa: F811
    unique: str,
    out_dir: Path,
) -> None:
    running = start_dispatcher(**dashboard.mirror_env())
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    projects: dict[str, str] = {}
    for label, owner in (("one", alice), ("two", alice), ("three", alice), ("bob", bob)):
        projects[label] = f"proj_{unique}_{label}"
        add_project(dashboard, running, projects[label], owner, f"fb{unique}-{label}")

    compiled = cli.run(["tsc", "-p", str(NODE_TESTS), "--outDir", str(out_dir)], check=False)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    test_file = out_dir / "tests" / "forgeboard" / "node" / "deploy.test.js"
    env = {
        "FORGEBOARD_TEST_DASHBOARD_URL": dashboard.url,
        "FORGEBOARD_TEST_PUBLISHABLE_KEY": dashboard.publishable_key,
        "FORGEBOARD_TEST_DISPATCHER_URL": running.url,
        "FORGEBOARD_TEST_HOOK_SECRET": running.secret.decode(),
        "FORGEBOARD_TEST_ALICE_TOKEN": dashboard.user_token(alice),
        "FORGEBOARD_TEST_PROJECT_ONE": projects["one"],
        "FORGEBOARD_TEST_PROJECT_TWO": projects["two"],
        "FORGEBOARD_TEST_PROJECT_THREE": projects["three"],
        "FORGEBOARD_TEST_BOBS_PROJECT": projects["bob"],
    }
    # TAP, the runner's machine-readable report (Node 22+ prints `spec` by default).
    argv = ["node", "--test", "--test-reporter=tap", str(test_file)]
    result = cli.run(argv, env=env, check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout and "# pass 4" in result.stdout, result.stdout

    # The dispatcher's own view agrees: one deployment per clicked project, none otherwise.
    store = running.store
    assert len(store.list_deployments(projects["one"])) == 1
    assert len(store.list_deployments(projects["two"])) == 1
    assert store.list_deployments(projects["three"]) == []
    assert store.list_deployments(projects["bob"]) == []
    first = store.list_deployments(projects["one"])[0]
    assert first.status in TERMINAL
