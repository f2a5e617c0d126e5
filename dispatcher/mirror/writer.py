"""Writes one row's fields to the dashboard through supabase-py (`create_client(url,
service_key)`), ordered by the row's `version`.

The update only applies where `version` is lower than the one sent (`.lt("version", v)`), so
a retry of the same change and an older change are both harmless no-ops. 5xx, 429, timeouts
and connection errors are retried with tenacity (the sleep injected); what is still failing
after that is `DashboardDown`, which the worker answers by trying again later. One httpx
response hook classifies every answer, before postgrest-py reads it.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
import tenacity
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

log = logging.getLogger("forge.dispatcher.mirror")


class DashboardDown(Exception):
    """The dashboard's API does not answer usefully now (5xx, 429, timeout, no connection)."""


class DashboardRefused(Exception):
    """The dashboard refused the write for good (4xx): a wrong key, table or column."""


class Written(Enum):
    APPLIED = "applied"
    STALE = "stale"  # the row already holds this version or a newer one
    MISSING = "missing"  # no such row (deleted on the dashboard's side)


def _classify(response: httpx.Response) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        raise DashboardDown(f"the dashboard answered {response.status_code}")


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
        """Apply `fields` (with their `version`) to the row, unless it holds a newer one."""
        try:
            return self._retrying(self._write, row_id, fields)
        except httpx.TransportError as e:
            raise DashboardDown(f"the dashboard cannot be reached: {type(e).__name__}") from e

    def _write(self, row_id: str, fields: dict[str, Any]) -> Written:
        table = self.settings.table
        try:
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
        except APIError as e:
            raise DashboardRefused(f"{e.code}: {e.message}") from e
        return Written.STALE if found.data else Written.MISSING

    def close(self) -> None:
        self._http.close()
