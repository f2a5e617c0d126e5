"""Who may see the pages: a short-lived signed link, the session it opens, its CSRF token.

A link is `/ui/login?scope=<scope>&exp=<expiry>&nonce=<random>&sig=<signature>`, the signature
the hook's rule (`dispatcher.core.signing`): HMAC-SHA256 of `"<expiry>.forge-ui-link <scope>
<nonce>"` with FORGE_HOOK_SECRET, so whoever holds the secret (`forge-dispatcher link`, the
dashboard kit's server action) mints one without asking the dispatcher. The nonce makes every
link unique, even two minted in one second for one page. A link is accepted once and only
before its expiry, at most `MAX_LINK_S` ahead; the scope is what the session may see
(`dispatcher.ui.scopes`).

The session cookie, `<payload>.<mac>`: the payload is base64url JSON of the session id and its
grants (scope and expiry each), the MAC an HMAC of it; HttpOnly, SameSite=Strict, Path=/ui/.
Opening another link adds its grant (at most `MAX_GRANTS`, the newest kept). Write actions also
carry the CSRF token, an HMAC of the session id (shown in the page, useless without the
cookie). All of it is pure: the clock is an argument.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from dataclasses import dataclass, replace
from urllib.parse import quote

from dispatcher.core.signing import signature_for
from dispatcher.ui.scopes import Grant, Grants, Scope

LINK_S = 300.0  # how long a minted link stays valid
MAX_LINK_S = 3600.0  # a link claiming to be valid longer is refused (not minted by us)
SESSION_S = 8 * 3600.0  # how long a grant lasts
MAX_GRANTS = 20
COOKIE = "forge_ui"
_EXPIRY = re.compile(r"^[0-9]{1,12}$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SIG = re.compile(r"^sha256=[0-9a-f]{64}$")
_SID = re.compile(r"^[0-9a-f]{32}$")
_COOKIE = re.compile(r"^([A-Za-z0-9_-]{1,3000})\.([0-9a-f]{64})$")


class LinkError(Exception):
    """A link or session refused; `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Link:
    scope: Scope
    expires: int  # unix seconds
    nonce: str
    signature: str

    def expired(self, now: float) -> bool:
        return self.expires < now

    def query(self) -> str:
        return (
            f"scope={quote(str(self.scope), safe='/:')}&exp={self.expires}&nonce={self.nonce}"
            f"&sig={quote(self.signature, safe='')}"
        )


def _link_signature(secret: bytes, scope: Scope, nonce: str, expires: int) -> str:
    return signature_for(secret, f"forge-ui-link {scope} {nonce}".encode(), str(expires))


def mint(secret: bytes, base_url: str, scope: Scope, now: float, valid_s: float = LINK_S) -> str:
    """The URL of a new link opening `scope` until `now + valid_s`."""
    expires, nonce = int(now + valid_s), secrets.token_hex(16)
    link = Link(scope, expires, nonce, _link_signature(secret, scope, nonce, expires))
    return f"{base_url.rstrip('/')}/ui/login?{link.query()}"


def check_link(secret: bytes, scope: str, expires: str, nonce: str, signature: str) -> Link:
    """The link when it is ours, or LinkError: bad_scope, bad_link, bad_signature. Expiry and
    single use are the caller's checks (`Link.expired`, `Store.remember_signature`): a browser
    already holding the scope goes through with a used or expired link."""
    try:
        parsed = Scope.parse(scope)
    except ValueError:
        raise LinkError("bad_scope", "the link does not open a page of the dispatcher") from None
    if not (_EXPIRY.match(expires) and _NONCE.match(nonce) and _SIG.match(signature)):
        raise LinkError("bad_link", "the link is malformed: ask for a new one")
    expected = _link_signature(secret, parsed, nonce, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise LinkError("bad_signature", "the link's signature does not match")
    return Link(parsed, int(expires), nonce, signature)


def check_fresh(link: Link, now: float) -> None:
    """LinkError unless the link may still sign in: expired, bad_link (too long)."""
    if link.expired(now):
        raise LinkError("expired", "the link has expired: ask for a new one")
    if link.expires - now > MAX_LINK_S:
        raise LinkError("bad_link", "the link claims to be valid for too long")


# -- the session ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    sid: str
    grants: Grants

    @property
    def expires(self) -> int:
        return max((g.expires for g in self.grants.items), default=0)


def _mac(secret: bytes, payload: str) -> str:
    return signature_for(secret, b"forge-ui-session " + payload.encode(), "0")[7:]


def granted(session: Session | None, scope: Scope, now: float) -> Session:
    """`session` (or a new one) with `scope` granted for `SESSION_S` from `now`."""
    grant = Grant(scope, int(now + SESSION_S))
    if session is None:
        return Session(secrets.token_hex(16), Grants((grant,)))
    kept = tuple(g for g in session.grants.items if g.scope != scope)
    return replace(session, grants=Grants((*kept, grant)[-MAX_GRANTS:]))


def session_cookie(secret: bytes, session: Session) -> str:
    body = {"sid": session.sid, "grants": [[str(g.scope), g.expires] for g in session.grants.items]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_mac(secret, payload)}"


def open_session(secret: bytes, cookie: str | None, now: float) -> Session:
    """The session with its live grants, or LinkError: no_session, bad_session, expired."""
    if not cookie:
        raise LinkError("no_session", "not signed in: open a link from `forge-dispatcher link`")
    found = _COOKIE.match(cookie)
    if not found or not hmac.compare_digest(_mac(secret, found[1]).encode(), found[2].encode()):
        raise LinkError("bad_session", "the session cookie is not one of ours")
    try:
        body = json.loads(base64.urlsafe_b64decode(found[1] + "=" * (-len(found[1]) % 4)))
        sid = str(body["sid"])
        grants = [Grant(Scope.parse(str(s)), int(e)) for s, e in body["grants"]]
    except (ValueError, KeyError, TypeError) as e:  # ours (the MAC matched), but not this shape
        raise LinkError("bad_session", "the session cookie is not one of ours") from e
    if not _SID.match(sid):
        raise LinkError("bad_session", "the session cookie is not one of ours")
    live = tuple(g for g in grants if g.expires >= now)
    if not live:
        raise LinkError("expired", "the session has expired: open a new link")
    return Session(sid, Grants(live))


def csrf_token(secret: bytes, sid: str) -> str:
    return signature_for(secret, b"forge-ui-csrf " + sid.encode(), "0")[7:]


def check_csrf(secret: bytes, sid: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(csrf_token(secret, sid).encode(), given.encode()):
        raise LinkError("bad_csrf", "the form's CSRF token is missing or wrong: reload the page")
