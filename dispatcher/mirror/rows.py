"""What the dashboard's `deployments` row says about one deployment, computed from the
dispatcher's store (pure: a deployment and its events in, the row's fields out).

- The dashboard's row id travels in the hook's `Idempotency-Key` as `forgeboard:<row id>`
  (deploy.ts sends it; the store keeps the key), so the mirror needs no field of its own.
- `steps` is the structured per-step state of the current attempt, folded from the runner's
  `step_*` events: `{step, state, started_at, finished_at, error}`, state `running`, `done`,
  `skipped` or `failed`, in the order the steps started.
- `log_tail` is the last `LOG_LINES` log messages, each cut to `LOG_LINE_CHARS`, masked.
- Every text in the row is `clean`: PostgreSQL's `text` and `jsonb` refuse NUL (`22P05`, `\u0000
  cannot be converted to text`) and a UTF-8 database cannot hold a lone surrogate (what a
  byte-level decode may leave in Python text); each becomes U+FFFD, so what the app's page or a
  log line carries can never make the row unwritable.
- `version` orders the rows: the deployment's `updated_at` in milliseconds plus its last event
  id. Both only grow, and every change of the deployment moves one of them, so a later
  reading of the store has a larger version and the same reading the same one.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.model import Deployment, StoredEvent
from runner.masking import Masker

KEY_PREFIX = "forgeboard:"
_ROW_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
LOG_LINES = 50
LOG_LINE_CHARS = 300
ERROR_CHARS = 4000

_STATES = {
    "step_started": "running",
    "step_finished": "done",
    "step_skipped": "skipped",
    "step_failed": "failed",
}


def dashboard_row_id(deployment: Deployment) -> str | None:
    """The dashboard's row id of a deployment it queued, else None."""
    key = deployment.idempotency_key or ""
    if not key.startswith(KEY_PREFIX):
        return None
    row_id = key[len(KEY_PREFIX) :]
    return row_id if _ROW_ID.match(row_id) else None


def idempotency_key(row_id: str) -> str:
    return KEY_PREFIX + row_id


def _millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Folded:
    """A deployment's events so far, folded: the current attempt's steps and the log tail."""

    last_event_id: int = 0
    attempt: int = 0
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def add(self, events: list[StoredEvent], masker: Masker) -> None:
        for event in events:
            self.last_event_id = max(self.last_event_id, event.id)
            if event.attempt > self.attempt:
                self.attempt, self.steps = event.attempt, {}
            if event.attempt < self.attempt:
                continue
            if event.type in _STATES:
                self._step(event, masker)
            elif event.type == "log":
                message = masker.mask(str(event.payload.get("message", "")))
                self.log.append(message[:LOG_LINE_CHARS])

    def _step(self, event: StoredEvent, masker: Masker) -> None:
        name = str(event.payload.get("step", ""))[:100]
        state = _STATES[event.type]
        entry = self.steps.setdefault(
            name,
            {"step": name, "state": state, "started_at": None, "finished_at": None, "error": None},
        )
        entry["state"] = state
        if state == "running":
            entry["started_at"], entry["finished_at"], entry["error"] = event.ts, None, None
        else:
            entry["finished_at"] = event.ts
        if state == "failed":
            entry["error"] = masker.mask(str(event.payload.get("error", "")))[:ERROR_CHARS]


_REFUSED = re.compile("[\x00\ud800-\udfff]")


def clean(value: Any) -> Any:
    """`value` (JSON: dicts, lists, text, numbers) with every character PostgreSQL's text and
    jsonb refuse replaced by U+FFFD, keys included."""
    if isinstance(value, str):
        return _REFUSED.sub("\ufffd", value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def row(deployment: Deployment, folded: Folded, masker: Masker) -> dict[str, Any]:
    """The row's fields the mirror writes (never a secret: URLs, states, masked text), clean."""
    error = masker.mask(deployment.error)[:ERROR_CHARS] if deployment.error else None
    fields: dict[str, Any] = {
        "dispatcher_id": deployment.id,
        "status": deployment.status.value,
        "step": deployment.step,
        "steps": [dict(s) for s in folded.steps.values()],
        "app_url": deployment.app_url,
        "repo_url": deployment.repo_url,
        "database_url": deployment.database_url,
        "health": deployment.health,
        "error": error,
        "log_tail": list(folded.log),
        "version": version(deployment, folded),
        "updated_at": deployment.updated_at,
    }
    cleaned: dict[str, Any] = clean(fields)
    return cleaned


def version(deployment: Deployment, folded: Folded) -> int:
    return _millis(deployment.updated_at) + folded.last_event_id
