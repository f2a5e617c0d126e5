"""Who may see the pages: a short-lived signed link, the session it opens, its CSRF token.

The link is the hook's rule (`dispatcher.core.signing`): HMAC-SHA256 of
`"<expiry>.<what it opens>"` with FORGE_HOOK_SECRET, so whoever holds the secret (the CLI's
`forge-dispatcher link ID`, a dashboard) can mint one without asking the dispatcher. It is
accepted once and only before its expiry, at most `MAX_LINK_S` ahead. Visiting it sets the
session cookie, `<expiry>.<random id>.<HMAC>`: HttpOnly, SameSite=Strict, Path=/ui/. Write actions
also carry the CSRF token, an HMAC of the session id (shown in the page, useless without the
cookie). All of it is pure: the clock is an argument.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from dispatcher.core.signing import signature_for
from runner.events import DEPLOYMENT_ID_RE

LINK_S = 300.0  # how long a minted link stays valid
MAX_LINK_S = 3600.0  # a link claiming to be valid longer is refused (not minted by us)
SESSION_S = 8 * 3600.0
COOKIE = "forge_ui"
_TARGET = re.compile(rf"^/ui/(deployments/{DEPLOYMENT_ID_RE})?$")
_EXPIRY = re.compile(r"^[0-9]{1,12}$")
_SIG = re.compile(r"^sha256=[0-9a-f]{64}$")


class LinkError(Exception):
    """A link or session refused; `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Link:
    target: str  # the page it opens: /ui/ or /ui/deployments/ID
    expires: int  # unix seconds
    signature: str


def target_for(deployment_id: str | None) -> str:
    return f"/ui/deployments/{deployment_id}" if deployment_id else "/ui/"


def _link_signature(secret: bytes, target: str, expires: int) -> str:
    return signature_for(secret, b"forge-ui-link " + target.encode(), str(expires))


def mint(secret: bytes, base_url: str, target: str, now: float, valid_s: float = LINK_S) -> str:
    """The URL of a link opening `target` until `now + valid_s`."""
    if not _TARGET.match(target):
        raise LinkError("bad_target", f"not a page of the dispatcher: {target!r}")
    expires = int(now + valid_s)
    sig = _link_signature(secret, target, expires)
    return (
        f"{base_url.rstrip('/')}/ui/login?next={quote(target, safe='/')}"
        f"&exp={expires}&sig={quote(sig, safe='')}"
    )


def check_link(secret: bytes, target: str, expires: str, signature: str, now: float) -> Link:
    """The link, or LinkError: bad_target, bad_link, expired, bad_signature. (Single use is the
    caller's check, as for the hook: `Store.remember_signature`.)"""
    if not _TARGET.match(target):
        raise LinkError("bad_target", "the link does not open a page of the dispatcher")
    if not _EXPIRY.match(expires) or not _SIG.match(signature):
        raise LinkError("bad_link", "the link is malformed: ask for a new one")
    when = int(expires)
    if when < now:
        raise LinkError("expired", "the link has expired: ask for a new one")
    if when - now > MAX_LINK_S:
        raise LinkError("bad_link", "the link claims to be valid for too long")
    expected = _link_signature(secret, target, when)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise LinkError("bad_signature", "the link's signature does not match")
    return Link(target, when, signature)


def _session_mac(secret: bytes, expires: int, sid: str) -> str:
    return signature_for(secret, b"forge-ui-session " + sid.encode(), str(expires))[7:]


def new_session(secret: bytes, now: float) -> str:
    """A session cookie's value."""
    expires = int(now + SESSION_S)
    sid = secrets.token_hex(16)
    return f"{expires}.{sid}.{_session_mac(secret, expires, sid)}"


def session_id(secret: bytes, cookie: str | None, now: float) -> str:
    """The session's id, or LinkError: no_session, bad_session, expired."""
    if not cookie:
        raise LinkError("no_session", "not signed in: open a link from `forge-dispatcher link`")
    parts = cookie.split(".")
    if len(parts) != 3 or not _EXPIRY.match(parts[0]) or not re.match("^[0-9a-f]{32}$", parts[1]):
        raise LinkError("bad_session", "the session cookie is not one of ours")
    expires, sid, mac = int(parts[0]), parts[1], parts[2]
    if not hmac.compare_digest(_session_mac(secret, expires, sid).encode(), mac.encode()):
        raise LinkError("bad_session", "the session cookie is not one of ours")
    if expires < now:
        raise LinkError("expired", "the session has expired: open a new link")
    return sid


def csrf_token(secret: bytes, sid: str) -> str:
    return signature_for(secret, b"forge-ui-csrf " + sid.encode(), "0")[7:]


def check_csrf(secret: bytes, sid: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(csrf_token(secret, sid).encode(), given.encode()):
        raise LinkError("bad_csrf", "the form's CSRF token is missing or wrong: reload the page")


def now() -> float:
    return time.time()
