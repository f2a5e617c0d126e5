"""A small signed HTTP client of the dispatcher's API (what the CLI uses)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from dispatcher.core.signing import sign


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class Client:
    def __init__(self, base_url: str, secret: bytes, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.trust_env = False

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        raw = b"" if body is None else json.dumps(body).encode()
        all_headers = {**sign(self.secret, raw, time.time()), **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        response = self.session.request(
            method,
            f"{self.base_url}{path}",
            data=raw or None,
            headers=all_headers,
            stream=stream,
            timeout=None if stream else self.timeout_s,
        )
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise ApiError(response.status_code, message)
        return response

    def submit(self, project_id: str, project_name: str, build_dir: str) -> dict[str, Any]:
        body = {"project_id": project_id, "project_name": project_name, "build_dir": build_dir}
        key = str(uuid.uuid4())
        result: dict[str, Any] = self._request(
            "POST", "/v1/deployments", body, headers={"Idempotency-Key": key}
        ).json()
        return result

    def get(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/deployments/{deployment_id}").json()
        return result

    def action(self, deployment_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/v1/deployments/{deployment_id}/{action}"
        ).json()
        return result

    def events(self, deployment_id: str, follow: bool) -> Iterator[dict[str, Any]]:
        query = "format=jsonl" + ("&follow=1" if follow else "")
        response = self._request(
            "GET", f"/v1/deployments/{deployment_id}/events?{query}", stream=follow
        )
        for line in response.iter_lines(decode_unicode=True):
            if line:
                yield json.loads(line)
