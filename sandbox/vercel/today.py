"""Vercel as it is today (late 2026), and its 2025 behaviour as one named setting per project.

Today (`2026`, the default): Node.js 20 reached end of life on 2026-04-30 and builds on it are
refused; a new project gets `nodeVersion` 24.x and Standard protection (`ssoProtection
{deploymentType: "preview"}`: previews behind Vercel login, production public). `2025`: a new
project gets 20.x and no protection, and builds run on 18.x, 20.x and 22.x. Every project keeps
the setting it was made with (`forge-sandbox serve --vercel-defaults`); the admin API changes
it per project (`PUT /_admin/vercel/projects/{idOrName}/defaults`).

Which Node a build runs on: the app's `package.json` `engines.node` when it names a major (as
on Vercel, it wins over the project setting), else the deployment's `projectSettings.nodeVersion`,
else the project's `nodeVersion`.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from sandbox.vercel.files import FileStore

DEFAULTS = ("2026", "2025")
NODE_VERSIONS = ("24.x", "22.x", "20.x", "18.x", "16.x")  # what the API stores
BUILDS_ON = {"2026": ("24.x", "22.x"), "2025": ("22.x", "20.x", "18.x")}
NEW_PROJECT: dict[str, dict[str, Any]] = {
    "2026": {"nodeVersion": "24.x", "ssoProtection": {"deploymentType": "preview"}},
    "2025": {"nodeVersion": "20.x", "ssoProtection": None},
}
_MAJOR = re.compile(r"^\s*(?:\^|~|>=|=)?\s*v?(\d+)(?:\.(?:\d+|x|\*))*\s*$")


def of(project: dict[str, Any]) -> str:
    """The setting a project behaves by (projects stored before it existed: today's)."""
    value = project.get("defaults")
    return value if value in DEFAULTS else "2026"


def engines_node(files: FileStore, manifest: dict[str, str], root: str | None) -> str | None:
    """`engines.node` of the app's package.json, if it has one."""
    path = posixpath.normpath(posixpath.join(root, "package.json") if root else "package.json")
    sha = manifest.get(path)
    if sha is None or not files.has(sha):
        return None
    try:
        engines = json.loads(files.read(sha)).get("engines")
    except (ValueError, AttributeError):
        return None
    node = engines.get("node") if isinstance(engines, dict) else None
    return node if isinstance(node, str) and node.strip() else None


def node_for_build(engines: str | None, setting: str | None) -> tuple[str, str]:
    """(the `N.x` a build runs on, where it came from) — engines.node's major wins."""
    match = _MAJOR.match(engines or "")
    if match:
        return f"{int(match.group(1))}.x", "engines"
    return (setting or "24.x"), "settings"


def node_error(defaults: str, version: str, source: str) -> str | None:
    """Vercel's build error for a Node version it no longer builds on, or None."""
    supported = BUILDS_ON[defaults]
    if version in supported:
        return None
    newest = supported[0]
    where = (
        f'set "engines": {{ "node": "{newest}" }} in your `package.json` file'
        if source == "engines"
        else f"set Node.js Version to {newest} in your Project Settings"
    )
    return (
        f'Found invalid or discontinued Node.js Version: "{version}". Please {where} to use '
        f"Node.js {newest.removesuffix('.x')}."
    )
