"""The Data API exposure check, after the migrations and before production moves (`exposure`
has the rules): the catalog read with a read-only query, the app's queried tables read from
the work copy, one structured `step_progress` event (`exposure`: every table, its grants, RLS,
policies, what the app uses it for, the findings) and the human table in the log.

A table the app queries that the API roles cannot reach fails the step with the GRANT to add;
what anyone holding the publishable key can read or write with no RLS in the way is a warning,
or a failure under `FORGE_EXPOSURE_POLICY=fail`. Nothing is granted or revoked here.
"""

from __future__ import annotations

import logging
from typing import Any

from runner import app_tables, exposure
from runner.context import RunContext
from runner.errors import StepFailed
from runner.providers.supabase import SupabaseClient
from runner.steps.supabase import HEALTHY, exposed_schemas
from runner.workcopy import WorkCopy

log = logging.getLogger("forge.runner.exposure")

STEP = "health.exposure"
SYMLINK = 0o120000


def used_tables(copy: WorkCopy) -> list[app_tables.AppTable]:
    """The tables the app's code queries, from the files that are pushed."""
    sources = [
        (entry.path, copy.read(entry.path))
        for entry in copy.files()
        if entry.mode != SYMLINK
        and entry.path.endswith(app_tables.SOURCE_SUFFIXES)
        and entry.size <= app_tables.MAX_SOURCE_BYTES
    ]
    return app_tables.scan(sources)


def read(
    ctx: RunContext, ref: str, schemas: tuple[str, ...], used: list[app_tables.AppTable]
) -> exposure.Report:
    """The report of project `ref` as it is now (read-only)."""
    rows = SupabaseClient(ctx.supabase).query(
        ref,
        exposure.CATALOG_SQL,
        [",".join(schemas)],
        purpose="read which tables the Data API exposes",
    )
    return exposure.analyse(schemas, exposure.relations(rows), used)


def announce(ctx: RunContext, report: exposure.Report) -> None:
    """The structured event and the human table."""
    counts = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    ctx.progress(
        STEP,
        f"Data API exposure: {len(report.relations)} table(s) and view(s), {counts}",
        exposure=report.to_json(),
        policy=ctx.settings.run.exposure_policy,
    )
    level = logging.WARNING if report.errors or report.warnings else logging.INFO
    for line in exposure.render(report).splitlines():  # one log line per row, as logs are read
        log.log(level, "%s", line)


def check(ctx: RunContext, ref: str, schemas: tuple[str, ...], copy: WorkCopy) -> exposure.Report:
    """Read, announce, and stop the deploy on what must not go live."""
    report = read(ctx, ref, schemas, used_tables(copy))
    announce(ctx, report)
    if report.errors:
        raise StepFailed(STEP, " | ".join(f.message for f in report.errors))
    if report.warnings and ctx.settings.run.exposure_policy == "fail":
        opened = [f.message for f in report.warnings if f.kind == "open"]
        if opened:
            raise StepFailed(STEP, "FORGE_EXPOSURE_POLICY=fail: " + " | ".join(opened))
    return report


def plan_entry(
    ctx: RunContext, project: dict[str, Any], pending: int, copy: WorkCopy
) -> dict[str, Any]:
    """`forge-runner plan`'s line for the check (read-only): the report of the project as it is,
    or why it cannot be read yet; the event and the human table as a deploy shows them."""
    used = used_tables(copy)
    entry: dict[str, Any] = {
        "resource": "supabase.exposure",
        "name": project["name"],
        "app_tables": [t.qualified for t in used],
    }
    ref = project.get("ref")
    if ref is None or project.get("status") != HEALTHY:
        why = "the project does not exist yet" if ref is None else f"it is {project['status']}"
        detail = f"checked after the migrations ({why})"
        return {**entry, "action": "unknown", "detail": detail}
    client = SupabaseClient(ctx.supabase)
    schemas = exposed_schemas(client.health(ref, ("rest",)))
    report = read(ctx, ref, schemas, used)
    announce(ctx, report)
    if pending:
        action = "unknown"
        detail = f"as the project is now; {pending} pending migration(s) may change it"
    elif report.errors:
        action, detail = "fix", "a deploy would stop before production: " + report.errors[0].message
    elif report.warnings:
        action, detail = "warn", report.warnings[0].message
    else:
        action, detail = "none", "every table the app queries is reachable; nothing is open"
    return {**entry, "action": action, "detail": detail, "exposure": report.to_json()}
