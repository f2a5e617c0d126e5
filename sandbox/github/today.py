"""GitHub's REST API as it answers today: API versions and fine-grained access tokens.

Versions: a request names one in `X-GitHub-Api-Version`; without the header GitHub takes
`2022-11-28` (still the default in 2026, supported for at least 24 months after `2026-03-10`),
and an unknown version is answered 400. `x-github-api-version-selected` says which one was used.

Fine-grained tokens (`github_pat_...`, made through the admin API: `POST
/_admin/github/tokens {"permissions": {"administration": "write", ...}}`, answered once, kept
in memory) hold repository permissions at a level (`read` < `write` < `admin`). A REST call
the token's permissions do not reach is answered 403 "Resource not accessible by personal
access token" with `X-Accepted-GitHub-Permissions` listing what the operation needs (sets
separated by `;`, as GitHub sends them). Git over HTTP asks `contents`: read to fetch, write to
push.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request

from sandbox.github.errors import GitHubError

DEFAULT_VERSION = "2022-11-28"
VERSIONS = (DEFAULT_VERSION, "2026-03-10")
LEVELS = {"read": 1, "write": 2, "admin": 3}
PERMISSIONS = frozenset({"administration", "contents", "metadata"})
_REPO = "/repos/{owner}/{repo}"
# What each REST operation of the emulator needs from a fine-grained token; GETs need metadata.
NEEDS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/orgs/{org}/repos"): {"administration": "write"},
    ("POST", "/user/repos"): {"administration": "write"},
    ("PATCH", _REPO): {"administration": "write"},
    ("DELETE", _REPO): {"administration": "write"},
    ("PUT", f"{_REPO}/topics"): {"administration": "write"},
}
READ = {"metadata": "read"}


def version(request: Request) -> str:
    """The API version a request asks for, or GitHubError 400 for one GitHub does not have."""
    asked = request.headers.get("x-github-api-version")
    if asked is None:
        return DEFAULT_VERSION
    if asked.strip() not in VERSIONS:
        raise GitHubError(
            400,
            f"The API version '{asked}' is not supported; supported versions: "
            + ", ".join(VERSIONS),
            doc="https://docs.github.com/rest/about-the-rest-api/api-versions",
        )
    return asked.strip()


def needs(method: str, path: str) -> dict[str, str]:
    return NEEDS.get((method, path), READ)


def accepted(needed: dict[str, str]) -> str:
    return ",".join(f"{name}={level}" for name, level in sorted(needed.items()))


def reaches(granted: dict[str, str], needed: dict[str, str]) -> bool:
    return all(
        LEVELS.get(granted.get(name, ""), 0) >= LEVELS[level] for name, level in needed.items()
    )


def refusal(needed: dict[str, str]) -> GitHubError:
    return GitHubError(
        403,
        "Resource not accessible by personal access token",
        headers={"x-accepted-github-permissions": accepted(needed)},
    )


class Tokens:
    """The fine-grained tokens made through the admin API (only their digests are kept)."""

    def __init__(self) -> None:
        self._by_digest: dict[str, dict[str, str]] = {}

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def add(self, permissions: dict[str, str]) -> str:
        token = "github_pat_" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "b")[:82]
        self._by_digest[self._digest(token)] = dict(permissions)
        return token

    def permissions(self, token: str) -> dict[str, str] | None:
        digest = self._digest(token)
        for known, granted in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return granted
        return None


def check_permissions(raw: object) -> dict[str, str] | str:
    """The permissions of an admin request, or what is wrong with it."""
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        return 'body must be {"permissions": {"<permission>": "read" | "write" | "admin"}}'
    unknown = sorted(set(raw) - PERMISSIONS)
    if unknown:
        return f"unknown permission(s) {unknown}; known: {sorted(PERMISSIONS)}"
    levels = sorted({v for v in raw.values()} - set(LEVELS))
    if levels:
        return f"unknown level(s) {levels}; known: {sorted(LEVELS)}"
    return {str(k): str(v) for k, v in raw.items()}
