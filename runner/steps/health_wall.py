"""The app half of the health check, as Vercel's deployment protection makes it.

A production URL behind Vercel login answers 401 with a login page, or redirects a browser to
`vercel.com/sso-api`; a check that follows redirects would read the login page as a healthy
app. So redirects are followed only within the app's own host (a trailing slash, a locale),
never to another one: a redirect to `vercel.com/sso-api`, or a 401 from a project whose
protection covers production, is named as the login wall; any other redirect away is named as
one. With the project's automation bypass secret the check sends `x-vercel-protection-bypass`
(to the app's host only), as Vercel documents for automation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

BYPASS_HEADER = "x-vercel-protection-bypass"
SSO_HOST = "vercel.com"
SSO_PATH = "/sso-api"
MAX_REDIRECTS = 5
LOGIN_WALL = "the production URL is behind Vercel authentication"


@dataclass(frozen=True)
class Wall:
    """The project's protection: `protected` names its deploymentType when it covers the
    production URL; `bypass` is an automation bypass secret (registered with the masker)."""

    protected: str | None
    bypass: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Answer:
    response: requests.Response | None  # the last answer, if one may be judged as the app's
    problem: str | None  # what stands between the check and the app, if anything
    login_wall: bool = False  # Vercel login: no rebuild of the app can change it


def _login(wall: Wall, how: str) -> str:
    protection = f"ssoProtection {wall.protected}" if wall.protected else "Vercel login"
    remedy = (
        "the bypass secret was refused"
        if wall.bypass
        else "give the project an automation bypass secret (Protection Bypass for Automation) "
        "or set its ssoProtection to preview"
    )
    return f"{LOGIN_WALL} ({protection}; {how}): {remedy}"


def get(http: requests.Session, url: str, wall: Wall, timeout: tuple[float, float]) -> Answer:
    """GET `url`, following redirects on its host only; raises requests' errors."""
    host = urlsplit(url).netloc
    headers = {BYPASS_HEADER: wall.bypass} if wall.bypass else {}
    for _ in range(MAX_REDIRECTS + 1):
        response = http.get(url, timeout=timeout, headers=headers, allow_redirects=False)
        if response.status_code == 401 and wall.protected:
            return Answer(response, _login(wall, "answered 401"), login_wall=True)
        if not response.is_redirect:
            return Answer(response, None)
        target = urljoin(url, response.headers.get("location", ""))
        where = urlsplit(target)
        if where.netloc != host:
            if where.hostname == SSO_HOST and where.path.startswith(SSO_PATH):
                where_to = f"redirects to {SSO_HOST}{SSO_PATH}"
                return Answer(None, _login(wall, where_to), login_wall=True)
            return Answer(None, f"the app redirects to another host ({where.netloc}); not followed")
        url = target
    return Answer(None, f"more than {MAX_REDIRECTS} redirects")
