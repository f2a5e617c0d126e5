"""Fault injection: make listed calls fail exactly as a test asks.

A rule is `{"service", "method", "path", "action", "times", "status", "retry_after", "delay_s",
"headers"}`: `status` answers `status` with the provider's own error body and any extra `headers`
(`{"x-ratelimit-remaining": "0", ...}`: a rate-limit 403); `delay` waits `delay_s` and then
serves the call; `hold` waits until the rule is taken out of the book (a test freezes a provider
call at a known point, then releases it) and then serves the call; `reset` drops the connection;
`timeout_after_success` does the work and then never answers (the ambiguous create). `times`
counts down; absent means every matching call.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVICES = ("github", "supabase", "vercel", "apps")
ACTIONS = ("status", "delay", "hold", "reset", "timeout_after_success")

ErrorBody = Callable[[int, str], dict[str, Any]]


class FaultRuleError(ValueError):
    """A fault rule is malformed; the message names the rule and the field."""


@dataclass
class FaultRule:
    service: str
    path: re.Pattern[str]
    action: str
    method: str | None = None
    times: int | None = None
    status: int = 503
    retry_after: float | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    @classmethod
    def parse(cls, raw: object, index: int) -> FaultRule:
        where = f"fault rule {index}"
        if not isinstance(raw, dict):
            raise FaultRuleError(f"{where}: must be a JSON object")
        unknown = set(raw) - {
            "service",
            "method",
            "path",
            "action",
            "times",
            "status",
            "retry_after",
            "delay_s",
            "headers",
        }
        if unknown:
            raise FaultRuleError(f"{where}: unknown field(s) {sorted(unknown)}")
        service = raw.get("service")
        if service not in SERVICES:
            raise FaultRuleError(f"{where}: 'service' must be one of {SERVICES}, got {service!r}")
        action = raw.get("action")
        if action not in ACTIONS:
            raise FaultRuleError(f"{where}: 'action' must be one of {ACTIONS}, got {action!r}")
        try:
            path = re.compile(str(raw.get("path", ".*")))
        except re.error as e:
            raise FaultRuleError(f"{where}: 'path' is not a valid regex: {e}") from e
        times = raw.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultRuleError(f"{where}: 'times' must be a positive integer")
        status = raw.get("status", 503)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultRuleError(f"{where}: 'status' must be an HTTP status code")
        method = raw.get("method")
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise FaultRuleError(f"{where}: 'headers' must map header names to strings")
        return cls(
            service=service,
            path=path,
            action=action,
            method=method.upper() if isinstance(method, str) else None,
            times=times,
            status=status,
            retry_after=raw.get("retry_after"),
            delay_s=float(raw.get("delay_s", 0.0)),
            headers={k.lower(): v for k, v in headers.items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "method": self.method,
            "path": self.path.pattern,
            "action": self.action,
            "times": self.times,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "headers": self.headers,
            "hits": self.hits,
        }


class FaultBook:
    """The live list of rules, shared by every service of one sandbox."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    @staticmethod
    def parse(document: object) -> list[FaultRule]:
        if not isinstance(document, list):
            raise FaultRuleError("faults must be a JSON list of rules")
        return [FaultRule.parse(raw, i) for i, raw in enumerate(document)]

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = rules

    def extend(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def holds(self, rule: FaultRule) -> bool:
        """Whether `rule` is still in the book (a held call waits while it is)."""
        with self._lock:
            return any(r is rule for r in self._rules)

    def take(self, service: str, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this call, counted as used."""
        with self._lock:
            for rule in self._rules:
                if rule.service != service or (rule.method and rule.method != method):
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                if not rule.path.search(path):
                    continue
                rule.hits += 1
                return rule
        return None


def drop_connection(send: Send) -> bool:
    """Abort the TCP connection under this ASGI call (uvicorn), as a crashing server would."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


class FaultMiddleware:
    """Outermost ASGI layer of each emulator: applies the matching rule, if any."""

    def __init__(self, app: ASGIApp, service: str, book: FaultBook, error_body: ErrorBody) -> None:
        self.app = app
        self.service = service
        self.book = book
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.book.take(self.service, scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.action in ("delay", "hold"):
            await self._serve_late(rule, scope, receive, send)
        elif rule.action == "status":
            await self._answer(rule, send)
        elif rule.action == "reset":
            if not drop_connection(send):
                raise ConnectionAbortedError("fault: reset")
        else:  # timeout_after_success
            await self._succeed_silently(scope, receive)

    async def _answer(self, rule: FaultRule, send: Send) -> None:
        body = json.dumps(self.error_body(rule.status, "fault injected by the sandbox")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if rule.retry_after is not None:
            headers.append((b"retry-after", str(rule.retry_after).encode()))
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in rule.headers.items()]
        await send({"type": "http.response.start", "status": rule.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _serve_late(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A slow server: it has the whole request, and does the work after `delay_s` (or once a
        held rule is released) even when the client gave up meanwhile (the answer then goes
        nowhere)."""
        replay = await _buffered(receive)
        if replay is None:
            return
        if rule.action == "hold":
            while self.book.holds(rule):
                await asyncio.sleep(0.02)
        else:
            await asyncio.sleep(rule.delay_s)
        await self.app(scope, replay, send)

    async def _succeed_silently(self, scope: Scope, receive: Receive) -> None:
        replay = await _buffered(receive)
        if replay is None:
            return

        async def discard(message: Message) -> None:
            return None

        await self.app(scope, replay, discard)
        # The work is done; now never answer. Wait for the client to give up.
        while (await receive())["type"] != "http.disconnect":
            pass


async def _buffered(receive: Receive) -> Receive | None:
    """The whole request body read now, as a `receive` that replays it once; None when the client
    left before sending it all."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # what the client does next: typically it disconnects
        replayed = True
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    return replay
