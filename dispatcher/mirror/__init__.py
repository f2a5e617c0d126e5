"""The ForgeBoard status mirror: each status change of a deployment the dashboard queued is
written to the dashboard's `deployments` row through supabase-py, by a background worker that
reads the dispatcher's store (`worker`), computing the row from it (`rows`) and writing it in
version order with retries (`writer`).

Configured from the environment; both or neither of the first two:

    FORGEBOARD_SUPABASE_URL          the dashboard project's API URL (https://<ref>.supabase.co)
    FORGEBOARD_SUPABASE_SERVICE_KEY  its service-role key (masked everywhere)
    FORGEBOARD_TABLE                 the table (deployments)
    FORGEBOARD_CA_FILE               a CA bundle for the dashboard's TLS (the sandbox's)
    FORGEBOARD_POLL_S                how often the worker looks without being woken (1)
    FORGEBOARD_RESYNC_S              the longest wait before a refused row is tried again (60)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dispatcher.core.deployments import Deployments
from dispatcher.mirror.worker import Mirror
from dispatcher.mirror.writer import Writer, WriterSettings
from runner.masking import Masker

__all__ = ["Mirror", "MirrorConfigError", "from_env"]

_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MirrorConfigError(ValueError):
    """A FORGEBOARD_* setting is missing or malformed; the message names it."""


def _seconds(environ: Mapping[str, str], name: str, default: str) -> float:
    try:
        value = float(environ.get(name, default))
    except ValueError as e:
        raise MirrorConfigError(f"{name} must be a number of seconds") from e
    if not 0.01 <= value <= 3600:
        raise MirrorConfigError(f"{name} must be between 0.01 and 3600")
    return value


def settings_from_env(
    environ: Mapping[str, str],
) -> tuple[WriterSettings, float, float] | None:
    """(writer settings, poll_s, resync_s), or None without FORGEBOARD_*."""
    url = environ.get("FORGEBOARD_SUPABASE_URL", "").strip()
    key = environ.get("FORGEBOARD_SUPABASE_SERVICE_KEY", "").strip()
    if not url and not key:
        return None
    if not url or not key:
        missing = "FORGEBOARD_SUPABASE_URL" if not url else "FORGEBOARD_SUPABASE_SERVICE_KEY"
        raise MirrorConfigError(f"{missing} is required when the other FORGEBOARD_ one is set")
    if not re.match(r"^https?://[^\s/]+", url):
        raise MirrorConfigError("FORGEBOARD_SUPABASE_URL must be an http(s) URL")
    table = environ.get("FORGEBOARD_TABLE", "deployments")
    if not _TABLE.match(table):
        raise MirrorConfigError("FORGEBOARD_TABLE must be a lower-case SQL name")
    poll_s = _seconds(environ, "FORGEBOARD_POLL_S", "1")
    resync_s = _seconds(environ, "FORGEBOARD_RESYNC_S", "60")
    ca_file = environ.get("FORGEBOARD_CA_FILE") or None
    return WriterSettings(url.rstrip("/"), key, table, ca_file), poll_s, resync_s


def from_env(environ: Mapping[str, str], deployments: Deployments, masker: Masker) -> Mirror | None:
    """The mirror the environment asks for (not started), or None without FORGEBOARD_*."""
    found = settings_from_env(environ)
    if found is None:
        return None
    settings, poll_s, resync_s = found
    masker.register(settings.service_key)
    return Mirror(deployments, Writer(settings), masker, poll_s=poll_s, resync_s=resync_s)
