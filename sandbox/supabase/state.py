"""The emulator's durable state: the account's profile, its projects and its scoped tokens.

A project's status is never stored; it is computed from the deadlines fixed at creation (or at
the last restore), so a sandbox restarted mid-provisioning carries on where it was.

A project's `defaults` is the one named setting that keeps Supabase's older behaviour testable:
`2026` (today's platform, every new project's unless `forge-sandbox serve --supabase-defaults
2025`): legacy JWT keys disabled, new `public` tables not granted to the API roles, the schema
root refused to public keys; `2025`: the legacy keys enabled, new tables granted to the API
roles automatically, the schema root open. It changes per project through the admin API.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sandbox.clock import Clock
from sandbox.store import JsonStore
from sandbox.supabase.keys import new_key_material, upgrade
from sandbox.supabase.signing import ensure_signing_key, new_signing_key

REF_LENGTH = 20
FIRST_PROJECT_ID = 700001
DEFAULTS = ("2026", "2025")
T = TypeVar("T")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_ref(taken: set[str]) -> str:
    while True:
        ref = "".join(secrets.choice(string.ascii_lowercase) for _ in range(REF_LENGTH))
        if ref not in taken:
            return ref


def status(project: dict[str, Any], now: float) -> str:
    """The project's lifecycle status at `now` (the spec's enum)."""
    if project.get("paused"):
        return "INACTIVE"
    if now < project["ready_at"]:
        return "RESTORING" if project.get("restored") else "COMING_UP"
    return "ACTIVE_HEALTHY"


def is_ready(project: dict[str, Any], now: float) -> bool:
    return status(project, now) == "ACTIVE_HEALTHY"


def keys_ready(project: dict[str, Any], now: float) -> bool:
    return bool(now >= project["keys_at"])


def defaults_2025(project: dict[str, Any]) -> bool:
    """Whether the project behaves as Supabase did in 2025 (a project made by a sandbox older
    than the setting did: it keeps that behaviour)."""
    return bool(project.get("defaults", "2025") == "2025")


class SupabaseState:
    """Projects by ref, persisted in `<state>/supabase/state.json`."""

    def __init__(self, path: Path, clock: Clock, defaults: str = "2026") -> None:
        self.clock = clock
        self.defaults = defaults  # what a new project gets
        self.store = JsonStore(
            path,
            {
                "projects": {},
                "next_id": FIRST_PROJECT_ID,
                "gotrue_id": str(uuid.uuid4()),
                "tokens": {},
            },
        )
        with self.store.change() as data:
            for project in data["projects"].values():  # made by an older sandbox
                upgrade(project["keys"])
                ensure_signing_key(project["keys"], project["created_at"])

    @property
    def gotrue_id(self) -> str:
        value: str = self.store.data["gotrue_id"]
        return value

    def projects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = sorted(
            self.store.data["projects"].values(), key=lambda p: p["created"]
        )
        return found

    def get(self, ref: str) -> dict[str, Any] | None:
        project: dict[str, Any] | None = self.store.data["projects"].get(ref)
        return project

    def reserve_ref(self) -> str:
        return new_ref(set(self.store.data["projects"]))

    def add(
        self,
        ref: str,
        name: str,
        org_slug: str,
        region: str,
        db_pass: str,
        database: dict[str, str],
    ) -> dict[str, Any]:
        """Record a project whose database exists; its deadlines start now."""
        now = self.clock.now()
        created_at = iso(now)
        with self.store.change() as data:
            project = {
                "id": data["next_id"],
                "ref": ref,
                "name": name,
                "organization_slug": org_slug,
                "region": region,
                "created": now,
                "created_at": created_at,
                "ready_at": now + self.clock.delay("supabase.provision"),
                "keys_at": now + self.clock.delay("supabase.api_keys"),
                "db_pass": db_pass,
                "db_role": database["role"],
                "db_name": database["dbname"],
                "db_version": database["version"],
                "postgres_engine": database["engine"],
                "paused": False,
                "restored": False,
                "defaults": self.defaults,
                "keys": {
                    **new_key_material(ref, now, created_at, legacy=self.defaults == "2025"),
                    "signing": new_signing_key(created_at),
                },
                "auth_config": {},
            }
            data["next_id"] += 1
            data["projects"][ref] = project
        return project

    def update(self, ref: str, **changes: Any) -> dict[str, Any]:
        with self.store.change() as data:
            project: dict[str, Any] = data["projects"][ref]
            project.update(changes)
        return project

    def change_keys(self, ref: str, edit: Callable[[dict[str, Any]], T]) -> T:
        """Run `edit` on the project's key material and store the result (atomically)."""
        with self.store.change() as data:
            return edit(data["projects"][ref]["keys"])

    # -- scoped tokens (the admin API issues them; the guard reads them) ----------------------
    def add_token(self, digest: str, permissions: list[str]) -> None:
        with self.store.change() as data:
            data["tokens"][digest] = {"permissions": permissions, "created_at": iso(time.time())}

    def token_permissions(self, digest: str) -> list[str] | None:
        found = self.store.data["tokens"].get(digest)
        return None if found is None else list(found["permissions"])

    def restart_provisioning(self, ref: str) -> dict[str, Any]:
        """After a restore: RESTORING for one provisioning delay, then ACTIVE_HEALTHY."""
        now = self.clock.now()
        return self.update(
            ref, paused=False, restored=True, ready_at=now + self.clock.delay("supabase.provision")
        )

    def remove(self, ref: str) -> None:
        with self.store.change() as data:
            data["projects"].pop(ref, None)
