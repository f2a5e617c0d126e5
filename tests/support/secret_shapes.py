"""Secrets found by their shape, not by their value: what a scan catches even when it does not
know the value (a key of a project torn down before the scan read the inventory, a key some
other run made).

- a Supabase secret API key, `sb_secret_` and at least 20 more characters (a masked listing
  shows its first four, then `•`: not a key);
- a Supabase personal access token, `sbp_` and 40 hex digits;
- a JWT whose payload claims the `service_role` role (the legacy service-role key, or a token
  minted with it): a publishable key, an anon JWT or a user's token is not a secret.

`found` names each hit by kind, first characters and length, never whole.
"""

from __future__ import annotations

import base64
import json
import re

_SECRET_KEY = re.compile(r"sb_secret_[A-Za-z0-9_]{20,}")
_ACCESS_TOKEN = re.compile(r"\bsbp_[0-9a-f]{40}\b")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.(eyJ[A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]{8,}")


def _claims(segment: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return None


def found(text: str) -> list[str]:
    hits = [f"a secret API key {m[:14]}...({len(m)} chars)" for m in _SECRET_KEY.findall(text)]
    hits += [f"an access token {m[:6]}...({len(m)} chars)" for m in _ACCESS_TOKEN.findall(text)]
    for match in _JWT.finditer(text):
        claims = _claims(match.group(1))
        if isinstance(claims, dict) and claims.get("role") == "service_role":
            hits.append(f"a service_role JWT ({len(match.group(0))} chars)")
    return hits
