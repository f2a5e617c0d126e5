"""`forge-runner teardown`: remove what forge-deploy made for one app, and nothing else.

Each provider's resource is checked for our marker first (`NotOurs` otherwise); what is already
gone counts as removed, so a teardown can be repeated.
"""

from __future__ import annotations

from runner.context import RunContext
from runner.steps import github, supabase, vercel
from runner.steps.runtime import step


def teardown(ctx: RunContext, app: str, *, archive: bool) -> dict[str, str]:
    removed: dict[str, str] = {}
    with step(ctx, "teardown.vercel") as s:
        removed["vercel"] = vercel.teardown_app(ctx, app)
        s.info.update(result=removed["vercel"])
    with step(ctx, "teardown.supabase") as s:
        removed["supabase"] = supabase.teardown_database(ctx, app)
        s.info.update(result=removed["supabase"])
    with step(ctx, "teardown.github") as s:
        removed["github"] = github.teardown_repo(ctx, app, archive=archive)
        s.info.update(result=removed["github"])
    return removed
