"""Provider calls derived from a recorded request log, as fault-rule matchers.

A clean run is recorded by the sandbox (`traffic.jsonl`); each distinct call in it, in the order it
was first made, becomes one matcher. A path segment that is the app's name becomes the name of the
case's app; a segment a provider handed out earlier in the same log (a project ref, a `prj_` or
`dpl_` id, an org) becomes `[^/]+`; everything else stays literal. Nothing is listed by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

NAME = "{name}"


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    segments: tuple[str, ...]  # literal, containing NAME, or "*" for an id

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} /" + "/".join(self.segments)

    def rule(self, name: str) -> dict[str, Any]:
        """A fault rule matching this call of app `name` (add the action)."""
        parts = []
        for segment in self.segments:
            if segment == "*":  # an id, never the name (`/v9/projects/{id}` vs `/{name}`)
                parts.append(f"(?!{re.escape(name)}$)[^/]+")
            else:
                parts.append(re.escape(segment).replace(re.escape(NAME), re.escape(name)))
        return {
            "service": self.service,
            "method": self.method,
            "path": "^/" + "/".join(parts) + "$",
        }


def _strings(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for value in document.values():
            yield from _strings(value)
    elif isinstance(document, list):
        for item in document:
            yield from _strings(item)
    elif isinstance(document, str):
        yield document


def _ids(entry: dict[str, Any]) -> Iterator[str]:
    """Strings an answer handed out that look like ids (no slash, at least 10 characters)."""
    return (s for s in _strings(entry.get("response_body")) if "/" not in s and len(s) >= 10)


def calls(
    log: list[dict[str, Any]], name: str, start: int = 0, accounts: Iterable[str] = ()
) -> list[Call]:
    """The distinct calls of `log[start:]` (a run of app `name`), in first-call order. What the
    providers handed out before, and the `accounts` (org, team) ids, are ids too. The sandbox's
    own control surface (`/_admin`) is not a provider call."""
    handed_out: set[str] = set(accounts)
    found: list[Call] = []
    for n, entry in enumerate(log):
        if n < start or entry["path"].startswith("/_admin"):
            handed_out.update(_ids(entry))
            continue
        segments = []
        for segment in entry["path"].lstrip("/").split("/"):
            if segment == name:
                segments.append(NAME)
            elif name in segment:  # `<name>.git`
                segments.append(segment.replace(name, NAME))
            elif segment in handed_out:
                segments.append("*")
            else:
                segments.append(segment)
        call = Call(entry["service"], entry["method"], tuple(segments))
        if call not in found:
            found.append(call)
        handed_out.update(_ids(entry))
    return found
