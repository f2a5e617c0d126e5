"""Apply the app's `supabase/migrations/*.sql` with the real `supabase db push`.

What was applied is never read from the CLI's human output: the remote history (the Management
API's migration list) is compared with the local files before and after the push. The CLI runs
each file in one transaction and records it in `supabase_migrations.schema_migrations`, so a
failing file leaves nothing half-applied, earlier files stay, and the first local file missing
from the history afterwards is the one that failed; the error quotes the CLI's stderr tail (the
SQL error), masked.

The password never reaches a command line (`ps` shows argv): the `--db-url` carries user, host,
port and database only, and the password travels in `PGPASSWORD`, which supabase 2.117.0 honours
for `--db-url` (checked against PostgreSQL: without it the connection fails with "client password
must be a string"; `SUPABASE_DB_PASSWORD` is *not* read with `--db-url`). The CLI sees only a
private copy of the migration files in a temporary directory, never the build directory, and a
private HOME; its environment is built from scratch, so the runner's tokens never reach it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from runner.context import RunContext
from runner.errors import BadInput, StepFailed
from runner.providers.supabase import PoolerConfig, SupabaseClient
from runner.settings import Settings

log = logging.getLogger("forge.runner.migrations")

STEP = "migrations"
MIGRATIONS_DIR = Path("supabase") / "migrations"
PUSH_TIMEOUT_S = 1800.0
STDERR_TAIL = 1500
_FILE_NAME = re.compile(r"^(\d+)_(.*)\.sql$")  # the CLI's own pattern for migration files
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")  # all the CLI gets from the runner's environment


@dataclass(frozen=True)
class LocalMigration:
    version: str
    name: str
    file: str  # the file name, e.g. 20240101000000_init.sql
    path: Path = field(repr=False)


@dataclass(frozen=True)
class MigrationResult:
    applied: list[str]  # file names, in order
    pending_before: list[str]
    skipped: str | None = None  # why nothing was run (no folder, no files)


def local_migrations(build_dir: Path) -> list[LocalMigration]:
    """The build's migration files in version order; BadInput for a file the CLI would skip or
    that is not UTF-8 text, for a duplicate version, or for a link leaving the build dir."""
    folder = build_dir / MIGRATIONS_DIR
    if not folder.is_dir():
        return []
    root = build_dir.resolve()
    found: dict[str, LocalMigration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql" or not path.is_file():
            continue
        shown = f"{MIGRATIONS_DIR}/{path.name}"
        if not path.resolve().is_relative_to(root):
            raise BadInput(f"{shown} is a link that leaves the build directory")
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise BadInput(
                f"{shown}: a migration file must be named <digits>_<name>.sql "
                "(supabase db push would skip it)"
            )
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInput(f"{shown} is not UTF-8 text (invalid byte at offset {e.start})") from e
        version = match.group(1)
        if version in found:
            raise BadInput(f"{shown} repeats version {version} of {found[version].file}")
        found[version] = LocalMigration(version, match.group(2), path.name, path)
    return sorted(found.values(), key=lambda m: m.file)  # the CLI's order: by file name


def db_url(pooler: PoolerConfig) -> str:
    """The database URL without a password (that goes in PGPASSWORD)."""
    host = f"[{pooler.db_host}]" if ":" in pooler.db_host else pooler.db_host
    url = (
        f"postgresql://{quote(pooler.db_user, safe='')}@{host}:{pooler.db_port}/"
        f"{quote(pooler.db_name, safe='')}"
    )
    return f"{url}?{pooler.query}" if pooler.query else url


def push_argv(cli: str, url: str) -> list[str]:
    """The command line: nothing secret in it. `--include-all` applies a missing file even when
    it sorts before the newest remote version (the CLI refuses that by default)."""
    return [cli, "db", "push", "--db-url", url, "--include-all", "--yes"]


def push_env(
    password: str, settings: Settings, home: Path, inherited: Mapping[str, str]
) -> dict[str, str]:
    """The CLI's whole environment: the password, telemetry off, a private HOME, the CA."""
    env = {k: inherited[k] for k in _INHERITED if k in inherited}
    env.update(
        {
            "HOME": str(home),
            "SUPABASE_HOME": str(home / ".supabase"),
            "PGPASSWORD": password,
            "SUPABASE_TELEMETRY_DISABLED": "1",
            "SUPABASE_NO_UPDATE_NOTIFIER": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    if settings.supabase.profile:
        env["SUPABASE_PROFILE"] = settings.supabase.profile
    if settings.run.ca_file:
        env["NODE_EXTRA_CA_CERTS"] = str(settings.run.ca_file)
        env["SSL_CERT_FILE"] = str(settings.run.ca_file)
    return env


def cli_path(environ: Mapping[str, str] | None = None) -> str:
    """`FORGE_SUPABASE_CLI`, else `supabase` on PATH."""
    environ = os.environ if environ is None else environ
    configured = environ.get("FORGE_SUPABASE_CLI")
    if configured:
        if not Path(configured).is_file():
            raise BadInput(f"FORGE_SUPABASE_CLI names {configured}, which is not a file")
        return configured
    found = shutil.which("supabase", path=environ.get("PATH"))
    if found is None:
        raise BadInput("the supabase CLI is not on PATH (set FORGE_SUPABASE_CLI)")
    return found


def _run_cli(
    ctx: RunContext, argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in its own process group; a cancel or the timeout ends that group."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    start = ctx.clock()
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.5)
                return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                ctx.check_cancelled()
                if ctx.clock() - start > PUSH_TIMEOUT_S:
                    raise StepFailed(
                        STEP, f"supabase db push did not finish in {PUSH_TIMEOUT_S:.0f} s"
                    ) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()


def _tail(ctx: RunContext, text: str) -> str:
    return ctx.masker.mask(text.strip()[-STDERR_TAIL:])


def push(ctx: RunContext, ref: str, password: str | None, build_dir: Path) -> MigrationResult:
    """Apply the pending migrations of `build_dir` to project `ref`; idempotent."""
    ctx.masker.register(password)
    if not (build_dir / MIGRATIONS_DIR).is_dir():
        return MigrationResult([], [], skipped=f"no {MIGRATIONS_DIR} folder")
    local = local_migrations(build_dir)  # validates every file before anything runs
    if not local:
        return MigrationResult([], [], skipped=f"no .sql files in {MIGRATIONS_DIR}")
    client = SupabaseClient(ctx.supabase)
    before = {m.version for m in client.list_migrations(ref)}
    pending = [m for m in local if m.version not in before]
    if not pending:
        ctx.progress(STEP, "no pending migration", pending=0)
        return MigrationResult([], [])
    if password is None:
        raise StepFailed(
            STEP,
            f"{len(pending)} migration(s) pending but the database password of project {ref} "
            "is unknown: it was generated by an earlier run and cannot be recovered without "
            "FORGE_SEAL_PRIVATE_KEY and that run's sealed checkpoint supabase.db_password_sealed",
        )
    names = [m.file for m in pending]
    ctx.progress(STEP, f"applying {len(pending)} migration(s)", pending=names)
    url = db_url(client.pooler_config(ref))
    cli = cli_path()
    scratch = Path(tempfile.mkdtemp(prefix="forge-migrate-"))
    try:
        work, home = scratch / "work", scratch / "home"
        (work / MIGRATIONS_DIR).mkdir(parents=True)
        home.mkdir()
        for migration in local:
            shutil.copyfile(migration.path, work / MIGRATIONS_DIR / migration.file)
        result = _run_cli(
            ctx, push_argv(cli, url), push_env(password, ctx.settings, home, os.environ), work
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    after = {m.version for m in client.list_migrations(ref)}
    applied = [m.file for m in pending if m.version in after]
    missing = [m for m in pending if m.version not in after]
    if missing or result.returncode != 0:
        failed = missing[0].file if missing else "(none missing)"
        error = _tail(ctx, result.stderr) or f"exit code {result.returncode}"
        log.error("supabase db push failed at %s (exit %d)", failed, result.returncode)
        raise StepFailed(
            STEP,
            f"migration {MIGRATIONS_DIR}/{failed} failed ({len(applied)} of {len(pending)} "
            f"applied before it): {error}",
        )
    ctx.progress(STEP, f"applied {len(applied)} migration(s)", applied=applied)
    return MigrationResult(applied, names)
