"""What earlier runs left: non-secret ids and URLs, and sealed secrets. One format, one way:
a run emits each checkpoint as a `checkpoint` event (`put`); whoever keeps them (the
dispatcher's store, a person's saved stdout) hands them to the next run as `--resume FILE`,
checkpoint lines in the runner's own event format (`resume_text`; a whole earlier stdout reads
the same); the next run starts from them (`from_events_file`). It still looks at every resource
(the provider is the truth), but it knows ids, and the sealed database password
(`SEALED_DB_PASSWORD`) it could never regenerate: a new attempt of one deploy, or a later
redeploy of the same app that must apply new migrations.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import BadInput
from runner.events import (
    VERSION,
    Event,
    EventFormatError,
    EventType,
    EventWriter,
    parse_event,
    utc_now,
)

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


def resume_text(deploy_id: str, values: Mapping[str, Any]) -> str:
    """`values` as the `--resume` file: one checkpoint event line per key (seq 1, 2, ...)."""
    ts = utc_now()
    return "".join(
        Event(VERSION, EventType.CHECKPOINT, deploy_id, seq, ts, {"key": k, "value": v}).to_json()
        + "\n"
        for seq, (k, v) in enumerate(values.items(), 1)
    )
