"""The keys the app gets: the project's publishable and secret keys, never a legacy JWT.

Supabase lists the legacy `anon` / `service_role` JWTs even once they are disabled (and they are
deprecated by the end of 2026), so a runner that preferred them would hand the app keys that
answer 401. Here the legacy pair is only looked at to say what it is (`GET .../api-keys/legacy`:
enabled, disabled, or gone); the app always gets the publishable key (what the browser holds)
and a secret key (server code; bypasses RLS). A project without a secret key gets one named
`forge_deploy` (made once: a create whose answer was lost is found by its name, not made
again); likewise a publishable key, should the project have none.

Both keys are registered with the masker before they are returned, so neither reaches an
output; the publishable key is public by design, but it is the project's and stays out of logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from runner.context import RunContext
from runner.ensure import ensure
from runner.errors import RetryableError, StepFailed
from runner.providers.supabase import ApiKey, SupabaseClient

log = logging.getLogger("forge.runner.database")

STEP = "supabase"
KEY_NAME = "forge_deploy"
KEY_DESCRIPTION = "Made by forge-deploy for the app's deployments"


@dataclass(frozen=True)
class AppKeys:
    """What the app is given; secrets, so kept out of `repr`."""

    publishable: str = field(repr=False)
    secret: str = field(repr=False)
    legacy: str  # the legacy pair: enabled | disabled | absent (never handed out)


def _usable(keys: list[ApiKey], kind: str) -> ApiKey | None:
    """The key of `kind` to use: ours (`forge_deploy`) first, then the project's `default`,
    then any (in the listed order)."""
    found = [k for k in keys if k.type == kind and k.value]
    for name in (KEY_NAME, "default"):
        for key in found:
            if key.name == name:
                return key
    return found[0] if found else None


def _ensure_key(ctx: RunContext, client: SupabaseClient, ref: str, kind: str) -> str:
    """A `forge_deploy` key of `kind`, made if the project has none; its value."""

    def find() -> ApiKey | None:
        return _usable(client.api_keys(ref), kind)

    def create() -> ApiKey:
        ctx.progress(STEP, f"the project has no {kind} key: creating {KEY_NAME}", ref=ref)
        return client.create_api_key(ref, kind, KEY_NAME, KEY_DESCRIPTION)

    key, created = ensure(
        f"{kind} key {KEY_NAME} of {ref}", find, create, ctx.policy, ctx.wait, ctx.settle
    )
    if key.value is None:
        raise StepFailed(STEP, f"the {kind} key {key.name} of {ref} came back without its value")
    ctx.masker.register(key.value)
    if created:
        ctx.progress(STEP, f"created the {kind} key {KEY_NAME}", ref=ref, key_id=key.id)
    return key.value


def read_keys(ctx: RunContext, ref: str, deadline_s: float) -> AppKeys:
    """The publishable and secret keys as soon as the project lists its keys (often before it
    is healthy), each registered with the masker before it is returned."""
    client = SupabaseClient(ctx.supabase)

    def listed() -> list[ApiKey] | None:
        try:
            keys = client.api_keys(ref)
        except RetryableError as e:  # the real API answers 500 right after create
            log.info("API keys of %s not readable yet: %s", ref, e)
            return None
        for key in keys:
            ctx.masker.register(key.value)
        return keys or None

    try:
        keys: list[ApiKey] = ctx.poll(STEP, f"API keys of project {ref}", listed, deadline_s)
    except TimeoutError as e:
        raise StepFailed(STEP, str(e)) from e
    enabled = client.legacy_keys_enabled(ref)
    legacy = "absent" if enabled is None else "enabled" if enabled else "disabled"
    if enabled:
        log.info(
            "the legacy anon / service_role keys of %s are enabled; the app gets the publishable"
            " and secret keys (the legacy pair is deprecated by the end of 2026)",
            ref,
        )
    values = {}
    for kind in ("publishable", "secret"):
        present = _usable(keys, kind)
        values[kind] = present.value if present and present.value else None
        if values[kind] is None:
            values[kind] = _ensure_key(ctx, client, ref, kind)
    publishable, secret = values["publishable"], values["secret"]
    assert publishable is not None and secret is not None
    ctx.progress(STEP, "API keys read: publishable and secret", ref=ref, legacy_keys=legacy)
    return AppKeys(publishable, secret, legacy)
