"""Writes one row's fields to the dashboard through supabase-py (`create_client(url,
service_key)`), ordered by the row's `version`.

The update only applies where `version` is lower than the one sent (`.lt("version", v)`), so
a retry of the same change and an older change are both harmless no-ops. 5xx, 429, timeouts
and connection errors are retried with tenacity (the sleep injected); what is still failing
after that is `DashboardDown`, which the worker answers by trying again later. One httpx
response hook classifies every answer, before postgrest-py reads it: any other 4xx is
`DashboardRefused`, carrying the status and PostgREST's `code` and `message` (or the gateway's
`message`), which the worker logs and retries on its own schedule.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
import tenacity
from supabase import Client, ClientOptions, create_client

log = logging.getLogger("forge.dispatcher.mirror")


class DashboardDown(Exception):
    """The dashboard's API does not answer usefully now (5xx, 429, timeout, no connection)."""


class DashboardRefused(Exception):
    """The dashboard answered a 4xx (not 429): the status and PostgREST's error (or the
    gateway's message). It may pass (a 404 while the API is being redeployed) or not (a
    missing column): the worker retries it with backoff and on its periodic re-sync."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"HTTP {status}, code {code or '-'}: {message}")
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, response: httpx.Response) -> DashboardRefused:
        text = response.read().decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code")
            message = body.get("message") or body.get("msg") or body.get("error") or text
            return cls(response.status_code, None if code is None else str(code), str(message))
        return cls(response.status_code, None, text.strip()[:300] or "(empty body)")


class Written(Enum):
    APPLIED = "applied"
    STALE = "stale"  # the row already holds this version or a newer one
    MISSING = "missing"  # no such row (deleted on the dashboard's side)


def _classify(response: httpx.Response) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise DashboardDown(f"the dashboard answered {status}")
    if status >= 400:
        raise DashboardRefused.of(response)


@dataclass(frozen=True)
class WriterSettings:
    url: str
    service_key: str
    table: str = "deployments"
    ca_file: str | None = None
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 0.5  # first wait; doubles, at most 8 s


class Writer:
    def __init__(
        self, settings: WriterSettings, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        self._http = http = httpx.Client(
            verify=verify,
            timeout=settings.timeout_s,
            event_hooks={"response": [_classify]},
        )
        self.client: Client = create_client(
            settings.url, settings.service_key, ClientOptions(httpx_client=http)
        )
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.attempts),
            wait=tenacity.wait_exponential(multiplier=settings.backoff_s, max=8),
            retry=tenacity.retry_if_exception_type((DashboardDown, httpx.TransportError)),
            sleep=sleep,
            reraise=True,
        )

    def write(self, row_id: str, fields: dict[str, Any]) -> Written:
        """Apply `fields` (with their `version`) to the row, unless it holds a newer one;
        `DashboardRefused` for a 4xx, `DashboardDown` once the retries are spent."""
        try:
            return self._retrying(self._write, row_id, fields)
        except httpx.TransportError as e:
            raise DashboardDown(f"the dashboard cannot be reached: {type(e).__name__}") from e

    def _write(self, row_id: str, fields: dict[str, Any]) -> Written:
        table = self.settings.table
        applied = (
            self.client.table(table)
            .update(fields)
            .eq("id", row_id)
            .lt("version", fields["version"])
            .execute()
        )
        if applied.data:
            return Written.APPLIED
        found = self.client.table(table).select("id").eq("id", row_id).execute()
        return Written.STALE if found.data else Written.MISSING

    def close(self) -> None:
        self._http.close()
