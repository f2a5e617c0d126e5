"""Replay recorded sandbox traffic through the providers' official OpenAPI excerpts.

Each recorded exchange whose method and path are operations of `shared/specs/<provider>.json`
is validated with openapi-core. Exchanges the document does not describe (gh's GraphQL, git
smart-HTTP, the CLIs' unversioned calls) are counted apart, never silently passed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse

from tests.support.clis import REPO

SPECS = REPO.parent / "shared" / "specs"
if not SPECS.exists():  # CI clones the repo with a copy of shared/ beside it
    SPECS = Path.cwd().parent / "shared" / "specs"

SPEC_FILES = {
    "github": ("github.json", "https://api.github.com", "/api/v3"),
    "supabase": ("supabase-management.json", "https://api.supabase.com", ""),
    "vercel": ("vercel.json", "https://api.vercel.com", ""),
}

# README "Known quirks": a full object matches both branches of these oneOfs; valid is valid.
_ONE_OF_BOTH = "is valid under each of"


@functools.cache
def spec(service: str) -> OpenAPI:
    document = json.loads((SPECS / SPEC_FILES[service][0]).read_text())
    if service == "vercel":
        _node_24(document)
    return OpenAPI.from_dict(document, base_uri=(SPECS / SPEC_FILES[service][0]).as_uri())


def _node_24(node: Any) -> None:
    """The Vercel excerpt (2025-10) predates Node 24 on Vercel: every Node version enum gains
    `24.x`, the version new projects get today (README of the specs, last section)."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "22.x" in enum and "24.x" not in enum:
            enum.insert(0, "24.x")
        for value in node.values():
            _node_24(value)
    elif isinstance(node, list):
        for value in node:
            _node_24(value)


@dataclass
class Report:
    validated: dict[str, list[str]] = field(default_factory=dict)
    undocumented_error: list[str] = field(default_factory=list)
    not_in_spec: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _query(raw: str) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(raw, keep_blank_values=True))


def error_shape_ok(service: str, body: Any) -> bool:
    if service == "vercel":
        error = body.get("error") if isinstance(body, dict) else None
        return isinstance(error, dict) and "code" in error and "message" in error
    return isinstance(body, dict) and isinstance(body.get("message"), str)


def _schema_errors(error: BaseException) -> list[str]:
    """The jsonschema messages anywhere in an openapi-core error's cause chain."""
    messages: list[str] = []
    current: BaseException | None = error
    while current is not None:
        for inner in getattr(current, "schema_errors", None) or []:
            messages.append(str(inner.message))
        current = current.__cause__ or current.__context__
    return messages


def validate(entries: list[dict[str, Any]]) -> Report:
    report = Report()
    for entry in entries:
        service = entry["service"]
        if service not in SPEC_FILES or entry.get("status") is None:
            continue
        _, host, prefix = SPEC_FILES[service]
        path = entry["path"]
        label = f"{service} {entry['method']} {path} -> {entry['status']}"
        if prefix:
            if not path.startswith(prefix + "/"):
                report.not_in_spec.append(label)
                continue
            path = path[len(prefix) :]
        body = entry.get("response_body")
        content_type = entry.get("response_headers", {}).get("content-type", "application/json")
        data = json.dumps(body).encode() if body is not None else b""
        request = MockRequest(host, entry["method"], path, args=_query(entry.get("query", "")))
        response = MockResponse(
            data,
            status_code=entry["status"],
            headers=entry.get("response_headers", {}),
            content_type=content_type.split(";")[0],
        )
        try:
            spec(service).validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            report.not_in_spec.append(label)
            continue
        except ResponseNotFound:
            # An error status the excerpt does not list (README: e.g. 404 on GET project).
            if entry["status"] >= 400 and error_shape_ok(service, body):
                report.undocumented_error.append(label)
            else:
                report.failures.append(f"{label}: status not in the document")
            continue
        except Exception as e:  # openapi-core raises a tree of validation errors
            messages = _schema_errors(e)
            if messages and all(_ONE_OF_BOTH in message for message in messages):
                report.validated.setdefault(service, []).append(label)
                continue
            report.failures.append(f"{label}: {e!r}: {' | '.join(messages)[:1500]}")
            continue
        report.validated.setdefault(service, []).append(label)
    return report
