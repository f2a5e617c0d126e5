"""`forge-runner plan`: what a deploy would create, update or leave. Only GET requests, and the
Data API exposure check's read-only query (`POST .../database/query/read-only`)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from runner import workcopy
from runner.context import RunContext
from runner.steps import exposure, github, supabase, vercel

log = logging.getLogger("forge.runner.plan")


def plan(ctx: RunContext, app: str, build_dir: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="forge-plan-") as tmp:
        copy = workcopy.make(build_dir, Path(tmp), "plan")
        changes: list[dict[str, Any]] = [github.plan_repo(ctx, app, copy)]
        database = supabase.plan_database(ctx, app, build_dir)
        pending = [c for c in database if c["resource"] == "supabase.migration"]
        changes.extend(database)
        changes.append(exposure.plan_entry(ctx, database[0], len(pending), copy))
        changes.extend(vercel.plan_app(ctx, app, copy))
    for change in changes:
        log.info("%-20s %-8s %s", change["resource"], change["action"], change.get("detail", ""))
    return changes
