"""The Vercel project's Supabase variables: which names the app gets, with what type, on which
targets, and the upsert that writes them (`sensitive` values can never be read back, not even
by us).

The secret key (under both its names) is server-only and goes to `production` alone: previews
get the public values only, as Supabase asks (a preview must not hold the production project's
secret key). A redeploy also takes a server-only variable off every other target where an
older forge-deploy wrote it (narrowed to `production`, or deleted when it held no other).
"""

from __future__ import annotations

from runner.context import RunContext
from runner.providers.vercel import EnvItem, VercelClient

STEP = "vercel"
SUPABASE_URL = "NEXT_PUBLIC_SUPABASE_URL"
SUPABASE_PUBLISHABLE_KEY = "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY"
SUPABASE_SECRET_KEY = "SUPABASE_SECRET_KEY"  # noqa: S105 - a variable name
# The older names, for apps written against them: both hold the new keys (supabase-js and
# supabase-py take a publishable key where an anon key was, a secret key for a service role key).
SUPABASE_ANON_KEY = "NEXT_PUBLIC_SUPABASE_ANON_KEY"
SUPABASE_SERVICE_ROLE_KEY = "SUPABASE_SERVICE_ROLE_KEY"
ENV_TYPES = {
    SUPABASE_URL: "encrypted",
    SUPABASE_PUBLISHABLE_KEY: "encrypted",
    SUPABASE_ANON_KEY: "encrypted",
    SUPABASE_SECRET_KEY: "sensitive",  # never readable back, not even by us
    SUPABASE_SERVICE_ROLE_KEY: "sensitive",
}
PUBLIC_TARGETS = ("production", "preview")  # `sensitive` may not target development
SERVER_TARGETS = ("production",)
SERVER_ONLY = frozenset({SUPABASE_SECRET_KEY, SUPABASE_SERVICE_ROLE_KEY})


def targets_of(key: str) -> tuple[str, ...]:
    return SERVER_TARGETS if key in SERVER_ONLY else PUBLIC_TARGETS


def supabase_env(url: str, publishable: str, secret: str) -> dict[str, str]:
    """Every Supabase variable the app gets; a redeploy of an app deployed with the legacy JWT
    keys overwrites them with the new keys (the upsert replaces each value)."""
    return {
        SUPABASE_URL: url,
        SUPABASE_PUBLISHABLE_KEY: publishable,
        SUPABASE_ANON_KEY: publishable,
        SUPABASE_SECRET_KEY: secret,
        SUPABASE_SERVICE_ROLE_KEY: secret,
    }


def set_env(ctx: RunContext, project_id: str, values: dict[str, str]) -> list[str]:
    """Upsert every value (the call is idempotent; values the caller registered as secrets),
    then take server-only keys off the targets they must not reach. Every result is checked;
    returns the keys written."""
    items = [
        EnvItem(key, value, ENV_TYPES.get(key, "encrypted"), targets_of(key))
        for key, value in sorted(values.items())
    ]
    vercel = VercelClient(ctx.vercel)
    written = vercel.upsert_env(project_id, items)
    keys = sorted({var.key for var in written})
    ctx.progress(STEP, f"env vars set: {', '.join(keys)}", keys=keys)
    _confine(ctx, vercel, project_id, SERVER_ONLY & set(values))
    return keys


def _confine(ctx: RunContext, vercel: VercelClient, project_id: str, keys: frozenset[str]) -> None:
    """Server-only variables that reach a target besides production lose it."""
    for var in vercel.list_env(project_id):
        if var.key not in keys or set(var.targets) <= set(SERVER_TARGETS):
            continue
        kept = [t for t in var.targets if t in SERVER_TARGETS]
        dropped = sorted(set(var.targets) - set(kept))
        if kept:
            vercel.retarget_env(project_id, var.id, kept)
        else:
            vercel.delete_env(project_id, var.id)
        ctx.progress(
            STEP,
            f"{var.key} taken off {', '.join(dropped)} (server-only: production alone)",
            key=var.key,
            removed_targets=dropped,
        )
