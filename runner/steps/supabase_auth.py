"""The auth service's URLs: `site_url` is where sign-up and magic-link e-mails send people, and
`uri_allow_list` the redirect URLs the app may ask for. Left at a new project's defaults they
point at `http://localhost:3000`, so every e-mail of the live app leads nowhere.

Before production moves, `site_url` becomes the production URL and the allow list gains the
production URL (and everything under it), the redirect URLs the app's `supabase/config.toml`
lists (`[auth] additional_redirect_urls`), and keeps every entry it had (added in the dashboard,
say): nothing is lost. Unchanged URLs are not written again. The health check reads them back.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from runner.context import RunContext
from runner.errors import BadInput, ProviderError
from runner.providers.supabase import AuthUrls, SupabaseClient

log = logging.getLogger("forge.runner.database")

STEP = "health.auth_urls"
CONFIG = Path("supabase") / "config.toml"


def app_redirects(build_dir: Path) -> list[str]:
    """`[auth] additional_redirect_urls` of the app's `supabase/config.toml` (none without the
    file); `BadInput` for a file the supabase CLI could not read either."""
    path = build_dir / CONFIG
    if not path.is_file():
        return []
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{CONFIG} is not valid TOML: {e}") from e
    auth = document.get("auth", {})
    urls = auth.get("additional_redirect_urls", []) if isinstance(auth, dict) else []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise BadInput(f"{CONFIG}: [auth] additional_redirect_urls must be a list of strings")
    return [u.strip() for u in urls if u.strip() and "," not in u]


def wanted(current: AuthUrls, live_url: str, redirects: list[str]) -> AuthUrls:
    """The URLs after a deploy to `live_url`: every entry kept, ours added once each."""
    live = live_url.rstrip("/")
    allow = list(current.allow_list)
    for entry in (live, f"{live}/**", *redirects):
        if entry not in allow:
            allow.append(entry)
    return AuthUrls(live, tuple(allow))


def ensure_urls(ctx: RunContext, ref: str, live_url: str, redirects: list[str]) -> AuthUrls:
    client = SupabaseClient(ctx.supabase)
    current = client.auth_urls(ref)
    target = wanted(current, live_url, redirects)
    if target == current:
        ctx.progress(STEP, "auth URLs already point at the live app", site_url=target.site_url)
        return current
    written = client.set_auth_urls(ref, target)
    ctx.progress(
        STEP,
        f"auth site_url set to {written.site_url} (was {current.site_url or 'unset'})",
        site_url=written.site_url,
        uri_allow_list=list(written.allow_list),
    )
    return written


def verify(ctx: RunContext, ref: str, live_url: str) -> dict[str, Any]:
    """The health check's evidence: the auth service's URLs read back."""
    live = live_url.rstrip("/")
    evidence: dict[str, Any] = {"check": "auth_urls", "url": live, "site_url": None}
    try:
        urls = SupabaseClient(ctx.supabase).auth_urls(ref)
    except ProviderError as e:
        return {**evidence, "ok": False, "status": e.status, "error": ctx.masker.mask(str(e))}
    ok = urls.site_url == live and live in urls.allow_list
    return {
        **evidence,
        "ok": ok,
        "status": 200,
        "site_url": urls.site_url,
        "error": None if ok else f"site_url is {urls.site_url!r}, expected {live!r}",
    }
