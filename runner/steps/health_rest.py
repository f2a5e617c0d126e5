"""The health check's Supabase half, through supabase-py as the app's own code calls it.

Never the schema root with a public key: Supabase refuses it to the publishable and anon keys
since 2026-03-11. Instead each table the app queries (`app_tables`) that the publishable key's
role may read is read as the app reads it — the publishable key, one row through the query
builder — and each answer is the evidence: an empty answer is healthy (RLS decides which rows
the key sees), `42501 permission denied` or any other refusal is not. Tables only signed-in users
may read are listed, not probed (the runner has no user). The secret key reads the schema root
for the report: the Data API is up and the tables it serves.

One httpx client per check: the run's CA file, no proxy from the environment, no redirects
(the keys go to this host only), and a response hook that marks 5xx and 429 transient before
postgrest-py reads the body. Retries are the health check's own (a few, with the run's wait),
not postgrest-py's.
"""

from __future__ import annotations

import importlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from runner.context import RunContext

if TYPE_CHECKING:
    from supabase import Client

log = logging.getLogger("forge.runner.health")

CHECK = "supabase_rest"


@dataclass(frozen=True)
class DataApi:
    """What the health check reads the project's Data API with; the keys stay out of `repr`."""

    url: str  # the project's URL (https://<ref>.supabase.co)
    publishable: str = field(repr=False)
    secret: str = field(repr=False)
    tables: tuple[str, ...] = ()  # schema.table the app reads with the publishable key
    signed_in_only: tuple[str, ...] = ()  # queried tables only `authenticated` may read


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
    """An answer that is not what a working Data API gives (a refused key, a missing schema)."""


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


def _served(document: Any) -> list[str]:
    """The tables a PostgREST root document lists (`/items`), in its order."""
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise Refused("the REST root did not answer an OpenAPI document")
    return [p[1:] for p in paths if isinstance(p, str) and p.count("/") == 1 and len(p) > 1]


def _root(client: Client, evidence: dict[str, Any]) -> None:
    """The schema root, read with the secret key."""
    rest = client.postgrest
    root = rest.session.get(str(rest.base_url) + "/", headers=rest.headers)
    evidence["status"] = root.status_code
    if not root.is_success:
        try:
            said = root.json().get("message")
        except (ValueError, AttributeError):
            said = None
        raise Refused(f"the REST root answered {root.status_code} to the secret key: {said}")
    evidence["served"] = len(_served(root.json()))


def _tables(client: Client, api: DataApi, evidence: dict[str, Any]) -> list[str]:
    """One row of each table, as the app reads it; the failures, as `table: code message`."""
    from postgrest.exceptions import APIError

    failures = []
    for qualified in api.tables:
        schema, _, name = qualified.partition(".")
        try:
            client.postgrest.schema(schema).from_(name).select("*").limit(1).execute()
        except APIError as e:
            evidence["tables"][qualified] = e.code or "refused"
            failures.append(f"{qualified}: {e.code} {e.message}")
        else:
            evidence["tables"][qualified] = "ok"
    return failures


def probe(
    ctx: RunContext,
    api: DataApi,
    attempts: int,
    excerpt: int,
    wait: Callable[[int], None],
) -> dict[str, Any]:
    """Up to `attempts` tries while the failure looks transient; the last try's evidence (its
    texts masked and cut to `excerpt` characters)."""
    from postgrest.exceptions import APIError
    from supabase import ClientOptions, create_client

    mask = ctx.masker.mask
    base = project_base(api.url)
    evidence: dict[str, Any] = {"check": CHECK, "url": mask(base + "/rest/v1/")}
    for attempt in range(1, attempts + 1):
        evidence.update(attempts=attempt, status=None, served=None, error=None, tables={})
        evidence["signed_in_only"] = list(api.signed_in_only)
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
                _root(create_client(base, api.secret, options), evidence)
                failures = _tables(create_client(base, api.publishable, options), api, evidence)
            except (Transient, httpx.TransportError) as e:
                evidence["error"] = mask(f"{type(e).__name__}: {e}")[:excerpt]
                transient = True
            except (APIError, Refused, ValueError) as e:
                message = e.message if isinstance(e, APIError) else str(e)
                evidence["error"] = mask(str(message))[:excerpt]
            else:
                if not failures:
                    evidence["ok"] = True
                    return evidence
                evidence["error"] = mask("; ".join(failures))[:excerpt]
        if evidence["status"] is None and seen:
            evidence["status"] = seen[-1]
        log.info("health %s: attempt %d failed (%s)", CHECK, attempt, evidence["error"])
        if not transient or attempt == attempts:
            break
        wait(attempt)
    evidence["ok"] = False
    return evidence
