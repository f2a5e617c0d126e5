"""The test API server: the Kubernetes REST endpoints the launcher uses, over `FakeCluster`.

    POST/GET          /apis/batch/v1/namespaces/{ns}/jobs            (labelSelector, limit)
    GET/DELETE        /apis/batch/v1/namespaces/{ns}/jobs/{name}     (propagationPolicy)
    POST              /api/v1/namespaces/{ns}/secrets
    GET/DELETE        /api/v1/namespaces/{ns}/secrets/{name}
    GET               /api/v1/namespaces/{ns}/pods                   (labelSelector)
    GET/DELETE        /api/v1/namespaces/{ns}/pods/{name}            (gracePeriodSeconds)
    GET               /api/v1/namespaces/{ns}/pods/{name}/log        (container, follow,
                                                                      tailLines, stream,
                                                                      timestamps)

Errors are `Status` objects with the real reasons and codes (404 NotFound, 409 AlreadyExists,
422 Invalid, 400 BadRequest). Delete options are read from the query and from a JSON
`DeleteOptions` body. A followed log is a chunked response that ends when the container has
exited and every line was sent (or, when a test queued a cut in `cluster.cut_follows`, after
that many lines and half of the next one, the container still running). Plain HTTP on
127.0.0.1 (the client is configured with `http://127.0.0.1:<port>`); no authentication. Every
request is recorded (method, path, body) for the tests' secret scan.

`serve(app)` runs any ASGI app with uvicorn in a thread on a free loopback port; the tests use
it for this server and for the bundle server (`dispatcher.bundles.serve_bundle`). `Listener`
does the same and can stop and start again on its port: an API server outage (set
`cluster.api_going_down` first, so the open follows end and the stop need not wait for them).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.k8s.fake_cluster import ApiError, FakeCluster

_LIST_KINDS = {"jobs": ("JobList", "batch/v1"), "pods": ("PodList", "v1")}


def _list(kind: str, items: list[dict[str, Any]], limit: str | None) -> dict[str, Any]:
    name, version = _LIST_KINDS[kind]
    if limit:
        items = items[: int(limit)]
    return {
        "kind": name,
        "apiVersion": version,
        "metadata": {"resourceVersion": "1"},
        "items": [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")} for i in items],
    }


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("true", "1")


def make_app(cluster: FakeCluster) -> Starlette:
    async def body_of(request: Request) -> tuple[bytes, dict[str, Any]]:
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "BadRequest", "the body is not JSON") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "BadRequest", "the body is not a JSON object")
        return raw, parsed

    def answer(
        handler: Callable[[Request], Any],
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw, body = b"", {}
            try:
                if request.method in ("POST", "DELETE"):
                    raw, body = await body_of(request)
                with cluster.lock:
                    cluster.requests.append(
                        (request.method, request.url.path, raw.decode(errors="replace"))
                    )
                request.state.body = body
                result = handler(request)
                if isinstance(result, Response):
                    return result
                code = 201 if request.method == "POST" else 200
                return JSONResponse(result, status_code=code)
            except ApiError as e:
                return JSONResponse(e.status(), status_code=e.code)

        return endpoint

    def deletion(request: Request, name: str) -> tuple[str | None, int | None]:
        options: dict[str, Any] = request.state.body
        policy = request.query_params.get("propagationPolicy") or options.get("propagationPolicy")
        grace = request.query_params.get("gracePeriodSeconds")
        if grace is None and options.get("gracePeriodSeconds") is not None:
            grace = str(options["gracePeriodSeconds"])
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(400, "BadRequest", f"unknown propagationPolicy {policy!r}")
        return policy, int(grace) if grace is not None else None

    def jobs(request: Request) -> Any:
        ns = request.path_params["ns"]
        if request.method == "POST":
            return cluster.create_job(ns, request.state.body)
        found = cluster.list_jobs(ns, request.query_params.get("labelSelector"))
        return _list("jobs", found, request.query_params.get("limit"))

    def job(request: Request) -> Any:
        ns, name = request.path_params["ns"], request.path_params["name"]
        if request.method == "DELETE":
            policy, _ = deletion(request, name)
            return cluster.delete_job(ns, name, policy)
        return cluster.get_job(ns, name)

    def secrets(request: Request) -> Any:
        return cluster.create_secret(request.path_params["ns"], request.state.body)

    def secret(request: Request) -> Any:
        ns, name = request.path_params["ns"], request.path_params["name"]
        if request.method == "DELETE":
            cluster.delete_secret(ns, name)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return cluster.get_secret(ns, name)

    def pods(request: Request) -> Any:
        found = cluster.list_pods(
            request.path_params["ns"], request.query_params.get("labelSelector")
        )
        return _list("pods", found, request.query_params.get("limit"))

    def pod(request: Request) -> Any:
        ns, name = request.path_params["ns"], request.path_params["name"]
        if request.method == "DELETE":
            _, grace = deletion(request, name)
            return cluster.delete_pod(ns, name, grace)
        return cluster.get_pod(ns, name)

    def log(request: Request) -> Any:
        ns, name = request.path_params["ns"], request.path_params["name"]
        found = cluster.get_pod(ns, name)
        params = request.query_params
        container = params.get("container")
        if container is None:
            names = [c["name"] for c in found["spec"]["containers"]]
            if len(names) != 1:
                raise ApiError(400, "BadRequest", "a container name must be specified")
            container = names[0]
        stream = params.get("stream", "All")
        if stream not in ("All", "Stdout", "Stderr"):
            raise ApiError(422, "Invalid", f"stream: Unsupported value: {stream!r}")
        tail = params.get("tailLines")
        if tail is not None and stream != "All":
            raise ApiError(422, "Invalid", "tailLines: only with stream All")
        buffer = cluster.log(ns, name, container)
        follow, stamps = _flag(request, "follow"), _flag(request, "timestamps")

        def render(entry: tuple[str, str, str]) -> bytes | None:
            stamp, which, text = entry
            if stream != "All" and which != stream.lower():
                return None
            return (f"{stamp} {text}\n" if stamps else f"{text}\n").encode()

        if not follow:
            with buffer.cond:
                entries = list(buffer.lines)
            rendered = [r for r in map(render, entries) if r is not None]
            if tail is not None:
                rendered = rendered[-int(tail) :] if int(tail) > 0 else []
            return Response(b"".join(rendered), media_type="text/plain")

        with cluster.lock:
            cut = cluster.cut_follows.pop(0) if cluster.cut_follows else None

        def follow_lines() -> Iterator[bytes]:
            sent = 0
            while True:
                with buffer.cond:
                    while (
                        sent >= len(buffer.lines)
                        and not buffer.closed
                        and not cluster.api_going_down.is_set()
                    ):
                        buffer.cond.wait(0.25)
                    entries = buffer.lines[sent:]
                    closed = buffer.closed
                if cut is not None and sent + len(entries) > cut:
                    # the test's hand: the stream ends mid-line while the container runs
                    head = b"".join(r for r in map(render, entries[: cut - sent]) if r)
                    tail = render(entries[cut - sent]) or b""
                    yield head + tail[: len(tail) // 2]
                    return
                sent += len(entries)
                chunk = b"".join(r for r in map(render, entries) if r is not None)
                if chunk:
                    yield chunk
                if closed and sent >= len(buffer.lines):
                    return
                if cluster.api_going_down.is_set():
                    return  # the server is stopping: its open follows end, the pods go on

        return StreamingResponse(follow_lines(), media_type="text/plain")

    base_batch = "/apis/batch/v1/namespaces/{ns}"
    base_core = "/api/v1/namespaces/{ns}"
    routes = [
        Route(f"{base_batch}/jobs", answer(jobs), methods=["GET", "POST"]),
        Route(f"{base_batch}/jobs/{{name}}", answer(job), methods=["GET", "DELETE"]),
        Route(f"{base_core}/secrets", answer(secrets), methods=["POST"]),
        Route(f"{base_core}/secrets/{{name}}", answer(secret), methods=["GET", "DELETE"]),
        Route(f"{base_core}/pods", answer(pods), methods=["GET"]),
        Route(f"{base_core}/pods/{{name}}", answer(pod), methods=["GET", "DELETE"]),
        Route(f"{base_core}/pods/{{name}}/log", answer(log), methods=["GET"]),
    ]
    return Starlette(routes=routes)


class Listener:
    """`app` served by uvicorn from a thread on one loopback port, which can go away (`stop`:
    every connection is refused) and come back on the same port (`start` again)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0  # chosen by the first start
        self._running: tuple[uvicorn.Server, threading.Thread, socket.socket] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self._running is None, "already serving"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("uvicorn did not start")
        self._running = (server, thread, sock)

    def stop(self) -> None:
        if self._running is None:
            return
        server, thread, sock = self._running
        self._running = None
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on 127.0.0.1; yields its base URL."""
    listener = Listener(app)
    listener.start()
    try:
        yield listener.url
    finally:
        listener.stop()
