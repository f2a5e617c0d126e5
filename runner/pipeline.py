"""The deploy as a small dependency graph, not a line.

    prepare ── github.repo ─┬─ github.push
      ┌─────────────────────┘
      ├─ supabase.project ── supabase.keys ─┬─ supabase.healthy ── supabase.migrations ─┐
      │                                     │                         health.exposure ─┤
      └─ vercel.project ────────────────────┴─ vercel.env ── vercel.build ──────────────┴┐
                     health.auth_urls ── vercel.promote ── health ───────────────────────┘

The repository comes first, alone (a few calls): a token GitHub refuses (a fine-grained token
lacking a permission, a 451) fails the deploy before a Supabase or Vercel project exists. Then
the push, Supabase and Vercel run together; the Vercel build (a *staged* production deployment: the
production environment, no production domains) starts as soon as the keys are known, while
Supabase finishes provisioning and migrating. Production traffic moves to the new deployment
(`promote`, no rebuild) only after the migrations succeeded and the Data API exposure check
found no table the app queries out of its users' reach (`steps.exposure`); the auth service's
URLs point at the production URL first. Both are named in the `health` lane: they check that
the app will work for its users, and the `supabase` lane ends, as the dashboards draw it, with
the migrations. A build that fails before the migrations are done is
rebuilt once they are (it may need the database at build time). `sequential=True` runs the
same steps strictly in line (the benchmark's baseline).
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import exposure, migrations, validation, workcopy
from runner.context import RunContext
from runner.errors import Cancelled
from runner.steps import exposure as exposure_step
from runner.steps import (
    github,
    health,
    health_rest,
    supabase,
    supabase_auth,
    supabase_keys,
    vercel,
    vercel_env,
    vercel_settings,
)
from runner.steps.runtime import skipped, step

log = logging.getLogger("forge.runner.pipeline")


@dataclass
class DeployReport:
    outcome: str = "failed"
    urls: dict[str, str] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    ref: str = ""  # the Supabase project's
    exposure: exposure.Report | None = None


@dataclass(frozen=True)
class Keys:
    url: str
    publishable: str = field(repr=False)
    secret: str = field(repr=False)


def _repo(ctx: RunContext, app: str, report: DeployReport) -> Any:
    with step(ctx, "github.repo") as s:
        ensured = github.ensure_repo(ctx, app)
        s.info.update(created=ensured.created, repo=ensured.repo.full_name)
    report.urls["repo"] = ensured.repo.html_url
    return ensured.repo


def _push(ctx: RunContext, repo: Any, copy: workcopy.WorkCopy, report: DeployReport) -> None:
    with step(ctx, "github.push") as s:
        pushed = github.push(ctx, repo, copy)
        s.info.update(commit=pushed.commit, pushed=pushed.pushed)
    report.details["commit"] = pushed.commit


def _supabase(
    ctx: RunContext,
    app: str,
    copy: workcopy.WorkCopy,
    build_dir: Path,
    keys: Future[Keys],
    report: DeployReport,
) -> None:
    try:
        with step(ctx, "supabase.project") as s:
            project = supabase.ensure_project(ctx, app)
            s.info.update(created=project.created, ref=project.ref)
        report.ref = project.ref
        url = supabase.project_url(ctx, project.ref)
        report.urls["database"] = url
        with step(ctx, "supabase.keys") as s:
            deadline = ctx.settings.run.supabase_deadline_s
            found = supabase_keys.read_keys(ctx, project.ref, deadline)
            s.info.update(legacy_keys=found.legacy)
        keys.set_result(Keys(url, found.publishable, found.secret))
    except BaseException as e:
        if not keys.done():
            keys.set_exception(e)
        raise
    with step(ctx, "supabase.healthy"):
        healthy = supabase.wait_healthy(ctx, project.ref)
    if not validation.migration_files(build_dir):
        skipped(ctx, "supabase.migrations", "no supabase/migrations/*.sql in the build")
        report.details["migrations_applied"] = []
    else:
        with step(ctx, "supabase.migrations") as s:
            result = migrations.push(ctx, project.ref, project.password, build_dir)
            s.info.update(applied=result.applied)
        report.details["migrations_applied"] = result.applied
    with step(ctx, exposure_step.STEP) as s:
        checked = exposure_step.check(ctx, project.ref, healthy.schemas, copy)
        s.info.update(errors=len(checked.errors), warnings=len(checked.warnings))
    report.exposure = checked
    report.details["exposure"] = checked.to_json()


def _build(
    ctx: RunContext,
    project: vercel.VercelProject,
    copy: workcopy.WorkCopy,
    name: str,
    force_new: bool,
) -> Any:
    with step(ctx, name) as s:
        deployed = vercel.deploy(ctx, project, copy, staged=True, force_new=force_new)
        s.info.update(
            deployment=deployed.deployment.id, files=deployed.files, uploaded=deployed.uploaded
        )
        return vercel.wait_ready(ctx, deployed.deployment.id)


def _vercel_until_built(
    ctx: RunContext, app: str, copy: workcopy.WorkCopy, keys: Future[Keys]
) -> tuple[vercel.VercelProject, Any, BaseException | None]:
    """Project, env, staged build. A failed build is returned, not raised: the caller rebuilds
    it after the migrations."""
    with step(ctx, "vercel.project") as s:
        ensured = vercel.ensure_project(ctx, app, vercel.node_of(copy))
        s.info.update(
            created=ensured.created, project=ensured.id, node_version=ensured.node_version
        )
    known = keys.result()
    with step(ctx, "vercel.env") as s:
        written = vercel_env.set_env(
            ctx, ensured.id, vercel_env.supabase_env(known.url, known.publishable, known.secret)
        )
        s.info.update(variables=len(written), keys=written)
    try:
        return ensured, _build(ctx, ensured, copy, "vercel.build", force_new=False), None
    except vercel.BuildFailed as e:
        log.warning("build failed before the migrations finished; will rebuild after: %s", e)
        return ensured, None, e


def _data_api(keys: Keys, report: DeployReport) -> health_rest.DataApi:
    """What the health check reads: each table the app queries that the publishable key's role
    may read (the others, signed-in users only, are listed)."""
    checked = report.exposure
    if checked is None:
        return health_rest.DataApi(keys.url, keys.publishable, keys.secret)
    roles = {r.qualified: r.grants for r in checked.relations}
    public, signed_in = [], []
    for table in checked.app_tables:
        grants = roles.get(table.qualified)
        if grants is None:
            continue
        if "SELECT" in grants.get("anon", ()):
            public.append(table.qualified)
        elif "SELECT" in grants.get("authenticated", ()):
            signed_in.append(table.qualified)
    return health_rest.DataApi(
        keys.url, keys.publishable, keys.secret, tuple(public), tuple(signed_in)
    )


def _release(
    ctx: RunContext,
    project: vercel.VercelProject,
    deployment: Any,
    copy: workcopy.WorkCopy,
    keys: Keys,
    redirects: list[str],
    report: DeployReport,
) -> None:
    run = ctx.settings.run
    with step(ctx, supabase_auth.STEP) as s:
        urls = supabase_auth.ensure_urls(
            ctx, report.ref, vercel.production_url(ctx, project), redirects
        )
        s.info.update(site_url=urls.site_url)
    api = _data_api(keys, report)
    wall = vercel_settings.login_wall(ctx, project.id)
    rebuilds = rechecks = 0  # together at most run.health_redeploys
    while True:
        with step(ctx, "vercel.promote") as s:
            live = vercel.promote(ctx, project, deployment)
            s.info.update(url=live, deployment=deployment.id)
        report.urls["app"] = live
        with step(ctx, "health") as s:
            checked = health.check(ctx, live, run.health_path, api, report.ref, wall)
            s.info.update(ok=checked.ok)
        report.health = {
            "ok": checked.ok,
            "evidence": checked.evidence,
            "redeploys": rebuilds,  # new builds of the app
            "rechecks": rechecks,  # checks again with no new build (only Supabase failed)
        }
        if checked.ok:
            report.outcome = "live"
            return
        walled = any(item.get("login_wall") for item in checked.evidence)
        if walled or rebuilds + rechecks >= run.health_redeploys:
            report.outcome = "unhealthy"  # no new build opens a login wall
            return
        app_ok = all(item["ok"] for item in checked.evidence if item["check"] == "app")
        if app_ok:  # only a Supabase check failed: a new build of the app cannot help
            rechecks += 1
            log.warning(
                "a Supabase check failed; checking again (%d of %d)",
                rebuilds + rechecks,
                run.health_redeploys,
            )
            ctx.wait(ctx.policy.wait(None, rechecks))
            continue
        rebuilds += 1
        log.warning(
            "health check failed; redeploy %d of %d", rebuilds + rechecks, run.health_redeploys
        )
        deployment = _build(ctx, project, copy, "vercel.redeploy", force_new=True)


def deploy(ctx: RunContext, app: str, build_dir: Path, *, sequential: bool = False) -> DeployReport:
    report = DeployReport()
    health_rest.preload()
    with tempfile.TemporaryDirectory(prefix="forge-work-") as tmp:
        with step(ctx, "prepare") as s:
            redirects = supabase_auth.app_redirects(build_dir)  # bad TOML: before anything
            copy = workcopy.make(build_dir, Path(tmp), f"Deploy {ctx.settings.run.deploy_id}")
            s.info.update(files=len(copy.files()), tree=copy.tree)
        keys: Future[Keys] = Future()
        repo = _repo(ctx, app, report)
        if sequential:
            _push(ctx, repo, copy, report)
            _supabase(ctx, app, copy, build_dir, keys, report)
            project, built, failure = _vercel_until_built(ctx, app, copy, keys)
        else:
            with ThreadPoolExecutor(max_workers=3, thread_name_prefix="step") as pool:
                branches = [
                    pool.submit(_push, ctx, repo, copy, report),
                    pool.submit(_supabase, ctx, app, copy, build_dir, keys, report),
                ]
                vercel = pool.submit(_vercel_until_built, ctx, app, copy, keys)
                _join([*branches, vercel], ctx)
                project, built, failure = vercel.result()
        if built is None:
            log.info("rebuilding after the migrations: %s", failure)
            built = _build(ctx, project, copy, "vercel.rebuild", force_new=True)
        _release(ctx, project, built, copy, keys.result(), redirects, report)
    return report


def _join(futures: list[Future[Any]], ctx: RunContext) -> None:
    """Wait for every branch; the first failure stops the others and is raised."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            ctx.stop("stopped: another step failed")  # the others stop at their next wait
    errors = [f.exception() for f in futures if f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    if real or errors:
        raise (real or errors)[0]  # type: ignore[misc]
