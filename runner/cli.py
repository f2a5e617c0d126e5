"""forge-runner: the deploy container's entrypoint.

    forge-runner deploy --build-dir DIR [--name NAME] [--resume EVENTS.jsonl]
    forge-runner plan --build-dir DIR [--name NAME]
    forge-runner teardown --name NAME [--archive]
    forge-runner keygen

stdout carries only events (`runner.events`), ending with `eof`; human logs go to stderr.
`FORGE_EVENTS_COPY=FILE` appends a copy of every event to FILE (the Docker launcher mounts one
per attempt: what a killed engine lost from its log is read back from it).
Exit codes: 0 live (or planned / removed), 1 failed, 2 bad input, 3 unhealthy, 4 cancelled.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from runner import logs, settings, validation
from runner.errors import BadInput, Cancelled, RunnerError
from runner.events import EXIT_CODES, EventType, EventWriter, Heartbeat, Outcome, deployment_id
from runner.masking import Masker
from runner.providers.catalog import SECRET_NAMES
from runner.signals import on_sigterm

if TYPE_CHECKING:  # the HTTP stack loads after the first event (container start latency)
    from runner.context import RunContext

log = logging.getLogger("forge.runner")

Work = Callable[["RunContext"], tuple[Outcome, dict[str, Any]]]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("forge-deploy")
    except PackageNotFoundError:
        return "dev"


def _deploy_id() -> str:
    try:
        return deployment_id(os.environ.get("FORGE_DEPLOY_ID", ""))
    except ValueError:
        return "unknown"


def _events_copy() -> TextIO | None:
    """The file `FORGE_EVENTS_COPY` names, opened to append a copy of every event; None when
    unset or not writable (then stdout alone carries the events, as it always does)."""
    path = os.environ.get("FORGE_EVENTS_COPY")
    if not path:
        return None
    try:
        return Path(path).open("a", encoding="utf-8")  # open for the whole run
    except OSError as e:
        print(
            f"forge-runner: FORGE_EVENTS_COPY {path} is not writable ({e}); stdout only",
            file=sys.stderr,
        )
        return None


def _run(work: Work) -> None:
    """Everything a command shares: masking first, events, signals, heartbeat, eof always."""
    masker = Masker()
    for name in SECRET_NAMES:
        masker.register(os.environ.get(name))
    writer = EventWriter(sys.stdout, _deploy_id(), masker, copy=_events_copy())
    logs.install(masker, writer)
    cancel = threading.Event()
    terminated = threading.Event()

    def stop() -> None:  # from the `sigterm` thread, never inside the handler (signals.py)
        log.warning("SIGTERM: stopping at the next safe point")
        terminated.set()
        cancel.set()

    on_sigterm(stop)
    outcome = Outcome.FAILED
    writer.emit(EventType.LOG, level="info", message=f"forge-runner {_version()} started")
    try:
        from runner.checkpoints import Checkpoints
        from runner.context import RunContext
        from runner.http import RetryPolicy

        config = settings.load()
        for secret in config.secrets():
            masker.register(secret)
        writer.deploy_id = config.run.deploy_id
        ctx = RunContext(
            config,
            writer,
            masker,
            Checkpoints(),
            cancel=cancel,
            policy=RetryPolicy(scale=config.run.backoff_scale),
        )
        ctx.stop_reason = "cancelled by SIGTERM"
        ctx.checkpoints.attach(writer)
        with Heartbeat(writer, config.run.heartbeat_s):
            outcome, payload = work(ctx)
        writer.emit(EventType.RESULT, outcome=outcome.value, **payload)
    except BadInput as e:
        outcome = Outcome.BAD_INPUT
        log.error("bad input: %s", e)
        writer.emit(EventType.RESULT, outcome=outcome.value, error=str(e))
    except Cancelled as e:
        outcome = Outcome.CANCELLED
        log.warning("%s", e)
        writer.emit(EventType.RESULT, outcome=outcome.value, error=str(e))
    except (RunnerError, TimeoutError) as e:
        outcome = Outcome.FAILED
        log.error("failed: %s", e)
        writer.emit(EventType.RESULT, outcome=outcome.value, error=str(e))
    except Exception as e:
        outcome = Outcome.FAILED
        error = f"internal error: {e}"
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            # The machine's fault, not ours: say where, and that a retry can succeed.
            where = e.filename or Path.cwd()
            error = f"no space left on the runner's disk ({where}): {e}; free space and retry"
            log.error("failed: %s", error)
        else:
            log.exception("crashed: %s", type(e).__name__)
        writer.emit(EventType.RESULT, outcome=outcome.value, error=error)
    finally:
        if terminated.is_set() and outcome is Outcome.FAILED:
            outcome = Outcome.CANCELLED
        writer.eof(outcome)
    sys.exit(EXIT_CODES[outcome])


@click.group()
def main() -> None:
    """Deploy a finished Next.js + Supabase build: GitHub repo, Supabase project, Vercel."""


def _name(build_dir: Path, name: str | None) -> str:
    return validation.app_name(name) if name is not None else validation.default_name(build_dir)


@main.command()
@click.option("--build-dir", required=True, help="The finished app (only read, never written).")
@click.option("--name", default=None, help="App name (default: package.json name).")
@click.option(
    "--resume",
    "resume",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoints of an earlier run (its events, JSON lines): continue from them.",
)
@click.option("--sequential", is_flag=True, hidden=True, help="Steps in a line (benchmark).")
def deploy(build_dir: str, name: str | None, resume: Path | None, sequential: bool) -> None:
    """Make the app live: repo pushed, database migrated, production deployment healthy."""

    def work(ctx: RunContext) -> tuple[Outcome, dict[str, Any]]:
        from runner import pipeline  # after the first event: the HTTP stack takes ~0.1 s

        root = validation.build_dir(build_dir)
        app = _name(root, name)
        if validation.migration_files(root):
            from runner import migrations

            migrations.cli_path()  # a missing CLI is bad input, found before anything exists
        if resume is not None:
            from runner.checkpoints import Checkpoints

            previous = Checkpoints.from_events_file(resume)
            if "FORGE_DEPLOY_ID" not in os.environ and previous.deploy_id:
                ctx.events.deploy_id = previous.deploy_id  # the same deploy, a new attempt
                ctx.settings = dataclasses.replace(
                    ctx.settings,
                    run=dataclasses.replace(ctx.settings.run, deploy_id=previous.deploy_id),
                )
            for key, value in previous.snapshot().items():
                ctx.checkpoints.put(key, value)
        report = pipeline.deploy(ctx, app, root, sequential=sequential)
        payload = {"app": app, "urls": report.urls, "health": report.health, **report.details}
        return Outcome(report.outcome), payload

    _run(work)


@main.command()
@click.option("--build-dir", required=True, help="The finished app.")
@click.option("--name", default=None, help="App name (default: package.json name).")
def plan(build_dir: str, name: str | None) -> None:
    """What deploy would create, update or leave (read-only)."""

    def work(ctx: RunContext) -> tuple[Outcome, dict[str, Any]]:
        from runner import planning

        root = validation.build_dir(build_dir)
        app = _name(root, name)
        changes = planning.plan(ctx, app, root)
        return Outcome.PLANNED, {"app": app, "changes": changes}

    _run(work)


@main.command(name="teardown")
@click.option("--name", required=True, help="App name.")
@click.option("--archive", is_flag=True, help="Archive the GitHub repo instead of deleting it.")
def teardown_command(name: str, archive: bool) -> None:
    """Remove the repo (or archive it), the Supabase project and the Vercel project we made."""

    def work(ctx: RunContext) -> tuple[Outcome, dict[str, Any]]:
        from runner import teardown

        app = validation.app_name(name)
        removed = teardown.teardown(ctx, app, archive=archive)
        return Outcome.REMOVED, {"app": app, "removed": removed}

    _run(work)


@main.command()
def keygen() -> None:
    """Print a new sealing key pair as JSON (FORGE_SEAL_PUBLIC_KEY / FORGE_SEAL_PRIVATE_KEY)."""
    from runner.sealing import new_keypair

    public, private = new_keypair()
    click.echo(json.dumps({"public_key": public, "private_key": private}))


if __name__ == "__main__":
    main()
