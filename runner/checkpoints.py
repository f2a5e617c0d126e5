"""What earlier attempts of this deploy left: non-secret ids and URLs, and sealed secrets.

A run records each resource it has ensured with `put` (which emits a `checkpoint` event). A new
attempt gets the previous attempts' events back (`--resume FILE`, the JSON lines the dispatcher
kept) and starts from their checkpoints: it still looks at every resource (the provider is the
truth), but it knows ids, and the sealed password it could never regenerate.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from runner.errors import BadInput
from runner.events import EventFormatError, EventType, EventWriter, parse_event

# The database password as an earlier run sealed it (runner.sealing); the dispatcher keeps it.
SEALED_DB_PASSWORD = "supabase.db_password_sealed"  # noqa: S105 - a checkpoint key, not a secret


class Checkpoints:
    def __init__(self, initial: dict[str, Any] | None = None, deploy_id: str | None = None) -> None:
        self._values: dict[str, Any] = dict(initial or {})
        self.deploy_id = deploy_id  # of the attempt the values came from
        self._lock = threading.Lock()
        self._writer: EventWriter | None = None

    def attach(self, writer: EventWriter) -> None:
        self._writer = writer

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if self._values.get(key) == value:
                return
            self._values[key] = value
        if self._writer is not None:
            self._writer.emit(EventType.CHECKPOINT, key=key, value=value)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    @classmethod
    def from_events_file(cls, path: Path) -> Checkpoints:
        """The checkpoints in a previous attempt's event log (JSON lines); later ones win."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"--resume {path}: cannot read it ({e})") from e
        values: dict[str, Any] = {}
        deploy_id: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = parse_event(line)
            except EventFormatError:
                if line.lstrip().startswith("{"):
                    raise BadInput(f"--resume {path}: line {number} is not an event") from None
                continue  # a log line kept by a launcher, not an event
            deploy_id = event.deploy_id
            if event.type is EventType.CHECKPOINT:
                values[str(event.payload["key"])] = event.payload["value"]
        return cls(values, deploy_id)
