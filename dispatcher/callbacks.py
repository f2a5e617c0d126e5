"""The optional outbound callback: a signed POST to FORGE_CALLBACK_URL on every status change.

Signed like the hook (`X-Forge-Timestamp`, `X-Forge-Signature: sha256=HMAC(secret,
"<ts>.<body>")`), sent from one background thread with retries (tenacity), never blocking a
deploy; the body is the deployment's public JSON (no secret in it).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from typing import Any

import requests
import tenacity

from dispatcher.core.signing import sign
from dispatcher.model import Deployment

log = logging.getLogger("forge.dispatcher.callbacks")

REMEMBERED = 10_000


class Callbacks:
    def __init__(self, url: str | None, secret: bytes, session: requests.Session | None = None):
        self.url = url
        self.secret = secret
        self.session = session or requests.Session()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        # The last status sent per deployment, so a repeat is not sent twice; the newest
        # REMEMBERED only (a repeat comes soon after its first, and the map must not grow
        # with every deployment the dispatcher ever ran).
        self._last: OrderedDict[str, str] = OrderedDict()

    def start(self) -> None:
        if self.url and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def status_changed(self, deployment: Deployment) -> None:
        if not self.url or self._last.get(deployment.id) == deployment.status.value:
            return
        self._last[deployment.id] = deployment.status.value
        self._last.move_to_end(deployment.id)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        self._queue.put({"event": "deployment.status", "deployment": deployment.public()})

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            try:
                self._send(body)
            except (requests.RequestException, tenacity.RetryError) as e:
                log.warning("callback to %s failed: %s", self.url, e)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10),
        retry=tenacity.retry_if_exception_type(requests.RequestException),
        reraise=True,
    )
    def _send(self, body: dict[str, Any]) -> None:
        assert self.url is not None
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **sign(self.secret, raw, time.time())}
        response = self.session.post(self.url, data=raw, headers=headers, timeout=10)
        if response.status_code >= 500 or response.status_code == 429:
            raise requests.HTTPError(f"callback answered {response.status_code}")
