"""The health check's Supabase half, through supabase-py as the app's own code calls it: the
project's PostgREST answers the anon key with its root document (the tables the anon role may
read), then a one-row read of the first of them through the query builder. An empty answer is
healthy (RLS decides which rows the anon key sees); a refused key, a missing schema or a 5xx is
not.

One httpx client per check: the run's CA file, no proxy from the environment, no redirects
(the key goes to this host only), and a response hook that marks 5xx and 429 transient before
postgrest-py reads the body. Retries are the health check's own (a few, with the run's wait),
not postgrest-py's.
"""

from __future__ import annotations

import importlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from runner.context import RunContext

if TYPE_CHECKING:
    from supabase import Client

log = logging.getLogger("forge.runner.health")

CHECK = "supabase_rest"


def preload() -> None:
    """Import supabase-py in the background (0.6 CPU-s): a deploy starts this at its start and
    finds it loaded at its health check; teardown and plan never pay for it. Not a daemon: a
    deploy that ends early waits for the import rather than cut it off at interpreter exit."""
    threading.Thread(
        target=importlib.import_module, args=("supabase",), name="preload-supabase"
    ).start()


class Transient(Exception):
    """A 5xx or 429 answer: worth another attempt."""


class Refused(Exception):
    """The REST root answered, but not with its document (a refused key, a missing schema)."""


def project_base(rest_url: str) -> str:
    """The project URL supabase-py wants (it adds /rest/v1 itself)."""
    base = rest_url.rstrip("/")
    return base.removesuffix("/rest/v1")


def _http(ctx: RunContext, seen: list[int]) -> httpx.Client:
    def classify(response: httpx.Response) -> None:
        seen.append(response.status_code)
        if response.status_code >= 500 or response.status_code == 429:
            raise Transient(f"HTTP {response.status_code}")

    run = ctx.settings.run
    verify: ssl.SSLContext | bool = True
    if run.ca_file:
        verify = ssl.create_default_context(cafile=str(run.ca_file))
    return httpx.Client(
        verify=verify,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(run.http_timeout_s, connect=10.0),
        event_hooks={"response": [classify]},
    )


def _tables(document: Any) -> list[str]:
    """The tables a PostgREST root document lists (`/items`), in its order."""
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise Refused("the REST root did not answer an OpenAPI document")
    return [p[1:] for p in paths if isinstance(p, str) and p.count("/") == 1 and len(p) > 1]


def _read(client: Client, evidence: dict[str, Any]) -> None:
    """Root document, then one row of its first table; raises on any failure."""
    rest = client.postgrest
    root = rest.session.get(str(rest.base_url) + "/", headers=rest.headers)
    evidence["status"] = root.status_code
    if not root.is_success:
        try:
            said = root.json().get("message")
        except (ValueError, AttributeError):
            said = None
        raise Refused(f"the REST root answered {root.status_code}: {said}")
    tables = _tables(root.json())
    if tables:
        evidence["table"] = tables[0]
        client.table(tables[0]).select("*").limit(1).execute()


def probe(
    ctx: RunContext,
    rest_url: str,
    anon_key: str,
    attempts: int,
    excerpt: int,
    wait: Callable[[int], None],
) -> dict[str, Any]:
    """Up to `attempts` tries while the failure looks transient; the last try's evidence (its
    texts masked and cut to `excerpt` characters)."""
    from postgrest.exceptions import APIError
    from supabase import ClientOptions, create_client

    mask = ctx.masker.mask
    base = project_base(rest_url)
    evidence: dict[str, Any] = {"check": CHECK, "url": mask(base + "/rest/v1/")}
    for attempt in range(1, attempts + 1):
        evidence.update(attempts=attempt, status=None, table=None, error=None)
        seen: list[int] = []
        transient = False
        with _http(ctx, seen) as http:
            options = ClientOptions(
                httpx_client=http,
                auto_refresh_token=False,
                persist_session=False,
                postgrest_client_retry=False,
            )
            try:
                _read(create_client(base, anon_key, options), evidence)
            except (Transient, httpx.TransportError) as e:
                evidence["error"] = mask(f"{type(e).__name__}: {e}")[:excerpt]
                transient = True
            except (APIError, Refused, ValueError) as e:
                message = e.message if isinstance(e, APIError) else str(e)
                evidence["error"] = mask(str(message))[:excerpt]
            else:
                evidence["ok"] = True
                return evidence
        if seen:
            evidence["status"] = seen[-1]
        log.info("health %s: attempt %d failed (%s)", CHECK, attempt, evidence["status"])
        if not transient or attempt == attempts:
            break
        wait(attempt)
    evidence["ok"] = False
    return evidence
