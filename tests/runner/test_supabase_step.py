"""The Supabase steps against the sandbox, with the real `supabase db push`: exactly one project
whatever the faults, keys before health, migrations applied once and atomically per file, the
password sealed for a resume and never in an output or a command line."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import migrations
from runner import settings as runner_settings
from runner.context import RunContext
from runner.errors import BadInput, FatalError, StepFailed
from runner.events import EventType
from runner.providers.supabase import PoolerConfig, SupabaseClient
from runner.sealing import new_keypair, unseal
from runner.steps import supabase as supabase_step
from runner.steps import supabase_keys
from tests.support import runner as runner_support
from tests.support.clis import REPO
from tests.support.runner import events_of
from tests.support.sandbox import SandboxProcess

CLI = REPO / "node_modules" / ".bin" / "supabase"
INIT = (
    "20240101000000_init.sql",
    "create table items (id int primary key, label text);\ninsert into items values (1, 'one');\n",
)
MORE = ("20240102000000_more.sql", "alter table items add column n int;\n")
THIRD = ("20240103000000_third.sql", "create table notes (id int primary key, body text);\n")
BAD = (
    "20240104000000_bad.sql",
    "create table half_applied (id int);\nselect * from no_such_table_xyz;\n",
)


class Contexts:
    """Makes in-process contexts; every event they wrote joins the session's secret scan."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.streams: list[io.StringIO] = []

    def __call__(self, **extra: str) -> tuple[RunContext, io.StringIO]:
        ctx, stream = runner_support.make_context({**self.env, **extra})
        self.streams.append(stream)
        return ctx, stream


@pytest.fixture
def contexts(runner_env: dict[str, str]) -> Iterator[Contexts]:
    made = Contexts(runner_env)
    yield made
    runner_support.CAPTURED.extend(s.getvalue() for s in made.streams)


@pytest.fixture
def app(sandbox: SandboxProcess, runner_env: dict[str, str], unique: str) -> Iterator[str]:
    """A fresh app name; its projects are removed afterwards (faults off first)."""
    name = f"db-{unique}"
    yield name
    sandbox.set_faults([])
    ctx, stream = runner_support.make_context(runner_env)
    supabase_step.teardown_database(ctx, name)
    runner_support.CAPTURED.append(stream.getvalue())


@pytest.fixture
def supabase_cli(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FORGE_SUPABASE_CLI", str(CLI))
    return CLI


def projects_named(sandbox: SandboxProcess, name: str) -> list[dict[str, Any]]:
    return [p for p in sandbox.resources()["supabase"]["projects"] if p["name"] == name]


def checkpoints(stream: io.StringIO) -> list[tuple[str, Any]]:
    return [
        (str(e.payload["key"]), e.payload["value"])
        for e in events_of(stream.getvalue())
        if e.type is EventType.CHECKPOINT
    ]


def write_migrations(build: Path, *files: tuple[str, str]) -> None:
    folder = build / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files:
        (folder / name).write_text(text)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def ready(ctx: RunContext, app: str) -> supabase_step.DatabaseProject:
    project = supabase_step.ensure_project(ctx, app)
    supabase_keys.read_keys(ctx, project.ref, 60)
    supabase_step.wait_healthy(ctx, project.ref)
    return project


# -- project: look, create, adopt ------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.clis
def test_ensure_twice_creates_then_adopts_and_seals_the_password(
    sandbox: SandboxProcess, contexts: Contexts, app: str, tmp_path: Path, supabase_cli: Path
) -> None:
    public, private = new_keypair()
    ctx, stream = contexts(FORGE_SEAL_PUBLIC_KEY=public)
    first = supabase_step.ensure_project(ctx, app)
    assert first.created and first.name == f"forge-{app}" and first.password is not None
    assert len(first.password) >= 32 and first.password in ctx.masker
    assert first.password not in repr(first)

    [entry] = projects_named(sandbox, f"forge-{app}")
    assert entry["ref"] == first.ref and entry["db_pass"] == first.password
    assert entry["organization_slug"] == sandbox.info["supabase"]["org"]

    points = checkpoints(stream)
    keys = [k for k, _ in points]
    # The sealed password is out before the create's answer (the ref) is known.
    assert keys.index("supabase.db_password_sealed") < keys.index("supabase.ref")
    sealed = dict(points)["supabase.db_password_sealed"]
    assert unseal(base64.b64decode(private), sealed) == first.password
    assert dict(points)["supabase.ref"] == first.ref

    again = supabase_step.ensure_project(ctx, app)
    assert (again.ref, again.created) == (first.ref, False)
    assert len(projects_named(sandbox, f"forge-{app}")) == 1

    # A new container: only the sealed checkpoint and the private key carry the password.
    ctx2, stream2 = contexts(FORGE_SEAL_PRIVATE_KEY=private)
    ctx2.checkpoints.put("supabase.db_password_sealed", sealed)
    resumed = supabase_step.ensure_project(ctx2, app)
    assert (resumed.ref, resumed.created, resumed.password) == (first.ref, False, first.password)
    assert resumed.password is not None and resumed.password in ctx2.masker
    supabase_step.wait_healthy(ctx2, resumed.ref)
    build = tmp_path / "build"
    write_migrations(build, INIT)
    result = migrations.push(ctx2, resumed.ref, resumed.password, build)
    assert result.applied == [INIT[0]]

    assert url_checkpoint(ctx2, resumed.ref)
    for text in (stream.getvalue(), stream2.getvalue()):
        assert first.password not in text

    assert supabase_step.teardown_database(ctx, app) == "deleted"
    assert projects_named(sandbox, f"forge-{app}") == []
    assert supabase_step.teardown_database(ctx, app) == "absent"


def url_checkpoint(ctx: RunContext, ref: str) -> bool:
    url = supabase_step.project_url(ctx, ref)
    return ref in url and ctx.checkpoints.get("supabase.url") == url


@pytest.mark.postgres
def test_adopts_the_oldest_of_duplicates_and_knows_no_password_without_the_key(
    sandbox: SandboxProcess, contexts: Contexts, app: str, tmp_path: Path
) -> None:
    ctx, _ = contexts()
    client = SupabaseClient(ctx.supabase)
    org = sandbox.info["supabase"]["org"]
    older = client.create_project(f"forge-{app}", org, "us-east-1", "Older-pass-0123456789")
    newer = client.create_project(f"forge-{app}", org, "us-east-1", "Newer-pass-0123456789")
    adopted = supabase_step.ensure_project(ctx, app)
    assert (adopted.ref, adopted.created, adopted.password) == (older.ref, False, None)
    assert len(projects_named(sandbox, f"forge-{app}")) == 2

    supabase_step.wait_healthy(ctx, adopted.ref)
    build = tmp_path / "build"
    write_migrations(build, INIT)
    with pytest.raises(StepFailed, match="FORGE_SEAL_PRIVATE_KEY") as failed:
        migrations.push(ctx, adopted.ref, None, build)
    assert "supabase.db_password_sealed" in str(failed.value)
    # Nothing pending needs no password: a redeploy without new migrations still passes.
    assert migrations.push(ctx, adopted.ref, None, tmp_path / "no-migrations").skipped
    assert newer.ref != older.ref


# -- faults on every call ----------------------------------------------------------------------
CALLS = [
    ("GET", r"^/v1/projects$"),
    ("POST", r"^/v1/projects$"),
    ("GET", r"^/v1/projects/[a-z]{20}$"),
    ("GET", r"/api-keys$"),
    ("GET", r"/health$"),
    ("GET", r"/config/database/pooler$"),
    ("GET", r"/database/migrations$"),
    ("DELETE", r"^/v1/projects/[a-z]{20}$"),
]
FAULTS = {
    "503-twice": {"action": "status", "status": 503, "times": 2},
    "429-retry-after": {"action": "status", "status": 429, "retry_after": 1, "times": 1},
    "reset": {"action": "reset", "times": 1},
}


@pytest.mark.postgres
@pytest.mark.clis
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_call_survives_transient_faults_with_exactly_one_project(
    sandbox: SandboxProcess,
    contexts: Contexts,
    app: str,
    tmp_path: Path,
    supabase_cli: Path,
    fault: str,
) -> None:
    sandbox.set_faults(
        [{"service": "supabase", "method": m, "path": p, **FAULTS[fault]} for m, p in CALLS]
    )
    ctx, stream = contexts()
    project = ready(ctx, app)
    assert project.created and project.password is not None
    build = tmp_path / "build"
    write_migrations(build, INIT)
    assert migrations.push(ctx, project.ref, project.password, build).applied == [INIT[0]]
    [entry] = projects_named(sandbox, f"forge-{app}")
    assert entry["ref"] == project.ref
    assert entry["migrations"] == [{"version": "20240101000000", "name": "init"}]
    assert supabase_step.teardown_database(ctx, app) == "deleted"
    assert projects_named(sandbox, f"forge-{app}") == []
    hits = {(r["method"], r["path"]): r["hits"] for r in sandbox.admin("GET", "faults").json()}
    assert all(hits[(m, p)] >= 1 for m, p in CALLS), hits  # every call met its fault
    assert project.password not in stream.getvalue()


@pytest.mark.postgres
def test_an_ambiguous_create_makes_exactly_one_project(
    sandbox: SandboxProcess, contexts: Contexts, app: str
) -> None:
    public, private = new_keypair()
    sandbox.set_faults(
        [
            {
                "service": "supabase",
                "method": "POST",
                "path": r"^/v1/projects$",
                "action": "timeout_after_success",
                "times": 1,
            }
        ]
    )
    ctx, stream = contexts(FORGE_SEAL_PUBLIC_KEY=public)
    project = supabase_step.ensure_project(ctx, app)
    [entry] = projects_named(sandbox, f"forge-{app}")
    assert project.created and project.ref == entry["ref"]
    assert project.password == entry["db_pass"]
    sealed = dict(checkpoints(stream))["supabase.db_password_sealed"]
    assert unseal(base64.b64decode(private), sealed) == entry["db_pass"]


@pytest.mark.postgres
def test_a_permanent_4xx_is_fatal_with_the_providers_message(
    sandbox: SandboxProcess, contexts: Contexts, app: str
) -> None:
    ctx, _ = contexts(SUPABASE_ORG_ID="no-such-org")
    with pytest.raises(FatalError) as refused:
        supabase_step.ensure_project(ctx, app)
    assert refused.value.status == 404 and "Organization no-such-org not found" in str(
        refused.value
    )
    assert projects_named(sandbox, f"forge-{app}") == []

    sandbox.set_faults(
        [
            {
                "service": "supabase",
                "method": "GET",
                "path": r"^/v1/projects$",
                "action": "status",
                "status": 403,
            }
        ]
    )
    ctx2, _ = contexts()
    with pytest.raises(FatalError) as forbidden:
        supabase_step.ensure_project(ctx2, app)
    assert (
        forbidden.value.status == 403 and "fault injected by the sandbox" in forbidden.value.message
    )


# -- keys and health ---------------------------------------------------------------------------
@pytest.mark.postgres
def test_keys_are_read_while_the_project_is_still_coming_up(
    sandbox: SandboxProcess, contexts: Contexts, app: str
) -> None:
    # Provisioning 9 s, keys after 2 s: wait_healthy's first look still sees COMING_UP on a
    # loaded machine (at 0.02, 1.8 s, it once came after the project was up).
    sandbox.set_time_scale(0.1)
    ctx, stream = contexts(FORGE_POLL_INTERVAL_S="0.25")  # ~30 looks, far inside 120/min
    project = supabase_step.ensure_project(ctx, app)
    keys = supabase_keys.read_keys(ctx, project.ref, 30)
    client = SupabaseClient(ctx.supabase)
    current = client.get_project(project.ref)
    assert current is not None and current.status == "COMING_UP"
    [entry] = projects_named(sandbox, f"forge-{app}")
    # Today's keys, never the legacy JWTs (listed, but disabled on a new project).
    assert (keys.publishable, keys.secret) == (
        entry["keys"]["publishable"],
        entry["keys"]["secret"],
    )
    assert keys.legacy == "disabled"
    assert keys.publishable in ctx.masker and keys.secret in ctx.masker
    assert keys.secret not in repr(keys) and keys.publishable not in repr(keys)

    healthy = supabase_step.wait_healthy(ctx, project.ref)
    assert healthy.project.status == "ACTIVE_HEALTHY" and healthy.schemas[0] == "public"
    statuses = [
        e.payload.get("status")
        for e in events_of(stream.getvalue())
        if e.type is EventType.STEP_PROGRESS and "status" in e.payload
    ]
    assert statuses[-1] == "ACTIVE_HEALTHY" and "COMING_UP" in statuses
    text = stream.getvalue()
    assert keys.publishable not in text and keys.secret not in text
    assert not any(k.startswith("supabase.") and "key" in k for k, _ in checkpoints(stream))


@pytest.mark.postgres
def test_a_project_without_a_secret_key_gets_one_made_once(
    sandbox: SandboxProcess, contexts: Contexts, app: str
) -> None:
    """The app needs a secret key: a project whose secret keys were deleted gets `forge_deploy`,
    made once (a create whose answer is lost is found by its name, not made again)."""
    ctx, stream = contexts()
    project = supabase_step.ensure_project(ctx, app)
    first = supabase_keys.read_keys(ctx, project.ref, 30)
    base = f"/v1/projects/{project.ref}/api-keys"
    for key in ctx.supabase.json("GET", base):
        if key["type"] == "secret":
            ctx.supabase.request("DELETE", f"{base}/{key['id']}")
    sandbox.set_faults(
        [{"service": "supabase", "method": "POST", "path": f"^{base}$",
          "action": "timeout_after_success", "times": 1}]
    )  # fmt: skip
    made = supabase_keys.read_keys(ctx, project.ref, 30)
    sandbox.set_faults([])
    again = supabase_keys.read_keys(ctx, project.ref, 30)
    secrets_ = [k for k in ctx.supabase.json("GET", base) if k["type"] == "secret"]
    assert [k["name"] for k in secrets_] == ["forge_deploy"]  # one, though the answer was lost
    assert made.secret == again.secret != first.secret and made.publishable == first.publishable
    assert made.secret.startswith("sb_secret_") and made.secret in ctx.masker
    assert made.secret not in stream.getvalue()
    created = [
        e.payload for e in events_of(stream.getvalue())
        if e.type is EventType.STEP_PROGRESS and "created the secret key" in e.payload["message"]
    ]  # fmt: skip
    assert len(created) == 1


@pytest.mark.postgres
def test_wait_healthy_fails_on_a_terminal_status_and_on_the_deadline(
    sandbox: SandboxProcess, contexts: Contexts, app: str
) -> None:
    ctx, _ = contexts()
    project = supabase_step.ensure_project(ctx, app)
    supabase_step.wait_healthy(ctx, project.ref)
    paused = ctx.supabase.request("POST", f"/v1/projects/{project.ref}/pause")
    assert paused.status_code == 200
    with pytest.raises(StepFailed, match="INACTIVE"):
        supabase_step.wait_healthy(ctx, project.ref)
    supabase_step.restore(ctx, project.ref)
    supabase_step.restore(ctx, project.ref)  # RESTORING or up: nothing asked again
    supabase_step.wait_healthy(ctx, project.ref)

    sandbox.set_time_scale(0.02)  # provisioning 1.8 s: the 1 s deadline passes first
    slow, _ = contexts(FORGE_SUPABASE_DEADLINE_S="1")
    client = SupabaseClient(slow.supabase)
    org = sandbox.info["supabase"]["org"]
    other = client.create_project(f"forge-{app}-slow", org, "us-east-1", "Slow-pass-0123456789")
    try:
        with pytest.raises(StepFailed, match="not ACTIVE_HEALTHY after 1 s"):
            supabase_step.wait_healthy(slow, other.ref)
    finally:
        sandbox.set_time_scale(sandbox.time_scale)
        supabase_step.teardown_database(ctx, f"{app}-slow")  # waits out the provisioning


# -- migrations ---------------------------------------------------------------------------------
class ArgvWatch:
    """Reads every process's command line while the CLI runs: the password must be in none."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.seen_cli = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes()
                except OSError:
                    continue
                if b"db\x00push" in argv:
                    self.seen_cli += 1
                if self.secret in argv:
                    self.leaks.append(cmdline.parent.name)


@pytest.mark.postgres
@pytest.mark.clis
def test_migrations_apply_once_then_only_new_ones_and_a_bad_file_is_named(
    sandbox: SandboxProcess, contexts: Contexts, app: str, tmp_path: Path, supabase_cli: Path
) -> None:
    ctx, stream = contexts()
    project = ready(ctx, app)
    assert project.password is not None
    build = tmp_path / "build"
    (build / "supabase").mkdir(parents=True)
    (build / "supabase" / "config.toml").write_text('project_id = "app"\n')
    write_migrations(build, INIT, MORE)
    before = tree(build)
    plan = supabase_step.plan_database(ctx, app, build)
    assert [(c["resource"], c["action"]) for c in plan] == [
        ("supabase.project", "none"),
        ("supabase.migration", "apply"),
        ("supabase.migration", "apply"),
    ]

    with ArgvWatch(project.password) as watch:
        first = migrations.push(ctx, project.ref, project.password, build)
    assert first.applied == [INIT[0], MORE[0]] == first.pending_before
    assert watch.seen_cli and not watch.leaks

    # A token the partner-only history endpoint refuses: the history is read by SQL instead.
    sandbox.set_faults(
        [
            {
                "service": "supabase",
                "method": "GET",
                "path": r"/database/migrations$",
                "action": "status",
                "status": 403,
            }
        ]
    )
    history = SupabaseClient(ctx.supabase).list_migrations(project.ref)
    assert [m.version for m in history] == ["20240101000000", "20240102000000"]
    second = migrations.push(ctx, project.ref, project.password, build)
    assert (second.applied, second.pending_before, second.skipped) == ([], [], None)
    sandbox.set_faults([])
    assert [c["action"] for c in supabase_step.plan_database(ctx, app, build)] == ["none"]

    write_migrations(build, THIRD)
    third = migrations.push(ctx, project.ref, project.password, build)
    assert third.applied == [THIRD[0]]

    write_migrations(build, BAD)
    with pytest.raises(StepFailed) as failed:
        migrations.push(ctx, project.ref, project.password, build)
    message = str(failed.value)
    assert "supabase/migrations/20240104000000_bad.sql" in message
    assert "no_such_table_xyz" in message and project.password not in message

    [entry] = projects_named(sandbox, f"forge-{app}")
    assert [m["version"] for m in entry["migrations"]] == [
        "20240101000000",
        "20240102000000",
        "20240103000000",
    ]
    client = SupabaseClient(ctx.supabase)
    [row] = client.query(
        project.ref,
        "select to_regclass('public.half_applied') is null as absent, "
        "to_regclass('public.notes') is not null as notes",
    )
    assert row == {"absent": True, "notes": True}
    assert tree(build) == {
        **before,
        **{f"supabase/migrations/{n}": t.encode() for n, t in (THIRD, BAD)},
    }
    assert project.password not in stream.getvalue()


@pytest.mark.postgres
def test_no_migrations_is_a_skip_and_a_non_utf8_file_is_refused_before_anything(
    tmp_path: Path, contexts: Contexts
) -> None:
    ctx, _ = contexts()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert migrations.push(ctx, "a" * 20, "unused-password-1", empty).skipped == (
        "no supabase/migrations folder"
    )
    (empty / "supabase" / "migrations").mkdir(parents=True)
    (empty / "supabase" / "migrations" / "README.md").write_text("notes")
    assert "no .sql files" in (migrations.push(ctx, "a" * 20, "pw-unused-1", empty).skipped or "")

    bad = tmp_path / "bad"
    write_migrations(bad, INIT)
    (bad / "supabase" / "migrations" / "20240102000000_latin1.sql").write_bytes(
        "select 'café';\n".encode("latin-1")
    )
    with pytest.raises(BadInput, match=r"20240102000000_latin1\.sql is not UTF-8"):
        migrations.push(ctx, "a" * 20, "pw-unused-1", bad)  # no request: the ref is not real

    misnamed = tmp_path / "misnamed"
    write_migrations(misnamed, ("init.sql", "select 1;\n"))
    with pytest.raises(BadInput, match=r"init\.sql: a migration file must be named"):
        migrations.local_migrations(misnamed)


def test_the_command_line_carries_no_password() -> None:
    pooler = PoolerConfig(
        "postgres.abcdefghijabcdefghij", "127.0.0.1", 5432, "postgres", "sslmode=disable"
    )
    url = migrations.db_url(pooler)
    assert (
        url == "postgresql://postgres.abcdefghijabcdefghij@127.0.0.1:5432/postgres?sslmode=disable"
    )
    argv = migrations.push_argv("supabase", url)
    assert (
        argv[:3] == ["supabase", "db", "push"]
        and ":" not in url.split("@")[0][len("postgresql://") :]
    )
    settings = runner_settings.load(
        {
            "GH_TOKEN": "ghp_token123",
            "GH_ORG": "org",
            "SUPABASE_ACCESS_TOKEN": "sbp_token123",
            "SUPABASE_ORG_ID": "org",
            "VERCEL_TOKEN": "vercel_token",
            "VERCEL_ORG_ID": "team",
        }
    )
    env = migrations.push_env(
        "Pa:ss/w@rd#1", settings, Path("/tmp/home"), {"PATH": "/usr/bin", "GH_TOKEN": "x"}
    )
    assert env["PGPASSWORD"] == "Pa:ss/w@rd#1" and env["PATH"] == "/usr/bin"
    assert "GH_TOKEN" not in env and "SUPABASE_ACCESS_TOKEN" not in env
    assert env["SUPABASE_TELEMETRY_DISABLED"] == env["SUPABASE_NO_UPDATE_NOTIFIER"] == "1"
    assert migrations.db_url(PoolerConfig("u", "::1", 6543, "db")) == "postgresql://u@[::1]:6543/db"


@pytest.mark.postgres
def test_plan_on_a_fresh_name_lists_creates(contexts: Contexts, app: str, tmp_path: Path) -> None:
    ctx, _ = contexts()
    build = tmp_path / "build"
    write_migrations(build, INIT, MORE)
    plan = supabase_step.plan_database(ctx, app, build)
    assert [(c["resource"], c["name"], c["action"]) for c in plan] == [
        ("supabase.project", f"forge-{app}", "create"),
        ("supabase.migration", INIT[0], "apply"),
        ("supabase.migration", MORE[0], "apply"),
    ]
