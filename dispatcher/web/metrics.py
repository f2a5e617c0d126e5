"""The metrics over HTTP: `RequestMetrics` (ASGI middleware) counts every answered request,
refused ones too, by route template (never the raw path); `render` is the text exposition of
the process's counters (`dispatcher.core.metrics`) and an app's store gauges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.core.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestMetrics:
    """Counts every answered request by method, route template and status (refused ones too)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        return _template(self.routes(), scope) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(
                    scope["method"], self._route(scope), str(message["status"])
                ).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def render(metrics: Metrics, store_registry: CollectorRegistry) -> bytes:
    """The text exposition of the process's counters and the app's store gauges."""
    return generate_latest(metrics.registry) + generate_latest(store_registry)


def _template(routes: list[Any], scope: Scope) -> str | None:
    """The template of the route `scope` matches, looking inside included routers."""
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            inner = getattr(route, "original_router", None)  # FastAPI's include_router
            if inner is not None:
                return _template(inner.routes, scope) or "other"
            return str(getattr(route, "path", "other"))
    return None
