"""Durable emulator state: one JSON document per service, rewritten atomically on change.

State lives under `--state-dir` and survives a restart of the sandbox, which the crash and
resume tests rely on. The documents are small (names, ids, timestamps); file contents and git
repositories live beside them on disk.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class JsonStore:
    """A dict persisted to `path`. Mutate inside `with store.change() as data:`."""

    def __init__(self, path: Path, initial: dict[str, Any]) -> None:
        self.path = path
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._data: dict[str, Any] = json.loads(path.read_text())
            for key, value in initial.items():
                self._data.setdefault(key, value)
        else:
            self._data = initial
            self._write()

    @property
    def data(self) -> dict[str, Any]:
        """Read access. Do not mutate outside `change()`."""
        return self._data

    @contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            yield self._data
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(self._data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
