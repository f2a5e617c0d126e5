"""The Vercel project's Supabase variables: which names the app gets, with what type, and the
upsert that writes them (`sensitive` values can never be read back, not even by us)."""

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
ENV_TARGETS = ("production", "preview")  # `sensitive` may not target development


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
    """Upsert every value (the call is idempotent; values the caller registered as secrets).
    Every result is checked; returns the keys written."""
    items = [
        EnvItem(key, value, ENV_TYPES.get(key, "encrypted"), ENV_TARGETS)
        for key, value in sorted(values.items())
    ]
    written = VercelClient(ctx.vercel).upsert_env(project_id, items)
    keys = sorted({var.key for var in written})
    ctx.progress(STEP, f"env vars set: {', '.join(keys)}", keys=keys)
    return keys
