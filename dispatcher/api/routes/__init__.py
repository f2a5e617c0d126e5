"""The API's routes, one module per resource, each adding its own to the app (the request
metrics read the route templates from `app.routes`)."""

from __future__ import annotations

from fastapi import FastAPI

from dispatcher.api.routes import deployments, events, ops
from dispatcher.core.deployments import Deployments
from dispatcher.web.settings import WebSettings


def add_routes(app: FastAPI, front: Deployments, settings: WebSettings) -> None:
    deployments.add_routes(app, front)
    events.add_routes(app, front, settings)
    ops.add_routes(app, front, settings)
