"""The Node.js version the app's Vercel project builds on: explicit, never Vercel's pick.

Node.js 20 reached end of life on 2026-04-30 and Vercel no longer builds on it; it builds on
24.x (the default of new projects) and 22.x. The app's `package.json` `engines.node` decides
when it names a supported major (Vercel itself lets engines win over the project setting);
without it the project gets 24.x. An app that asks only for an unsupported one (20 or older,
or a major Vercel does not offer) is refused before anything is created, naming the field.
A range (`>=22`, `^22 || ^24`) gets the newest supported major it allows.
"""

from __future__ import annotations

import json
import re

from runner.errors import BadInput

SUPPORTED = (24, 22)  # newest first
DEFAULT = f"{SUPPORTED[0]}.x"
_EXACT = re.compile(r"^(?:\^|~|=|v)?\s*(\d+)(?:\.(?:\d+|x|X|\*))*$")
_AT_LEAST = re.compile(r"^>=?\s*v?(\d+)(?:\.(?:\d+|x|\*))*(?:\s+<\s*v?(\d+)(?:\.\d+)*)?$")


def _majors(alternative: str) -> set[int] | None:
    """The supported majors one `||` alternative allows; None when it is not a range we read."""
    text = alternative.strip()
    if text in ("*", "x", "latest", "lts/*"):
        return set(SUPPORTED)
    exact = _EXACT.match(text)
    if exact:
        return {int(exact.group(1))} & set(SUPPORTED)
    at_least = _AT_LEAST.match(text)
    if at_least:
        low = int(at_least.group(1)) + (1 if text.startswith(">") and "=" not in text[:2] else 0)
        high = int(at_least.group(2)) if at_least.group(2) else 10**6
        return {m for m in SUPPORTED if low <= m < high}
    return None


def node_version(package_json: bytes | None) -> str:
    """`N.x` for the app's Vercel project, or BadInput naming `engines.node` and what to set."""
    if package_json is None:
        return DEFAULT
    try:
        package = json.loads(package_json)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"package.json is not valid UTF-8 JSON: {e}") from e
    engines = package.get("engines") if isinstance(package, dict) else None
    if engines is None or (isinstance(engines, dict) and engines.get("node") is None):
        return DEFAULT
    node = engines.get("node") if isinstance(engines, dict) else None
    if not isinstance(node, str) or not node.strip():
        raise BadInput('package.json "engines" must be an object whose "node" is a version range')
    shown = json.dumps(node)
    allowed: set[int] = set()
    for alternative in node.split("||"):
        majors = _majors(alternative)
        if majors is None:
            raise BadInput(
                f"package.json engines.node {shown} is not a Node.js version range forge-deploy "
                f'can read; name a major Vercel builds on, e.g. "{DEFAULT}"'
            )
        allowed |= majors
    if not allowed:
        offered = " and ".join(f"{m}.x" for m in SUPPORTED)
        raise BadInput(
            f"package.json engines.node {shown} asks for a Node.js version Vercel no longer "
            f"builds on (it builds on {offered}; Node.js 20 reached end of life on 2026-04-30): "
            f'set "engines": {{"node": "{DEFAULT}"}}'
        )
    return f"{max(allowed)}.x"
