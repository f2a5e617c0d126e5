"""The CLI's live view of one deployment: a line per step with its state and elapsed time on a
terminal, plain lines when piped, raw events with --json."""

from __future__ import annotations

import json
from typing import Any, TextIO

_MARK = {"finished": "✓", "failed": "✗", "skipped": "-", "started": "…"}


class Progress:
    def __init__(self, out: TextIO, mode: str) -> None:
        self.out = out
        self.mode = mode  # "tty" | "plain" | "json"
        self.reproduce: str | None = None

    def event(self, event: dict[str, Any]) -> None:
        if self.mode == "json":
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()
            return
        kind = str(event.get("type", ""))
        payload = event.get("payload") or {}
        if kind == "log" and payload.get("source") == "reproduce":
            self.reproduce = str(payload.get("message"))
        line = self._line(kind, payload, int(event.get("attempt", 1)))
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def _line(self, kind: str, payload: dict[str, Any], attempt: int) -> str | None:
        step = payload.get("step")
        if kind.startswith("step_") and step:
            state = kind.removeprefix("step_")
            if state == "progress":
                return None
            detail = ""
            if state == "finished":
                detail = f"{float(payload.get('elapsed_s', 0.0)):7.2f} s"
            elif state == "failed":
                detail = str(payload.get("error", ""))
            elif state == "skipped":
                detail = str(payload.get("reason", ""))
            if self.mode == "tty":
                return f"  {_MARK.get(state, '?')} {step:<22} {detail}".rstrip()
            return f"step {step} {state} {detail}".rstrip()
        if kind == "status":
            status = payload.get("status")
            error = f": {payload['error']}" if payload.get("error") else ""
            return f"attempt {attempt}: {status}{error}"
        return None
