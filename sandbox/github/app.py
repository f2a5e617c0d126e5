"""The GitHub emulator's ASGI app: REST under /api/v3, GraphQL at /api/graphql, git at /<o>/<r>.

Every API answer goes through `Api.endpoint`: the API version (400 for an unknown one), token
check (401 Bad credentials), a fine-grained token's permissions (403 with
`X-Accepted-GitHub-Permissions`, `today`), one point of the hourly budget (403 when spent),
GitHub's error body for a raised GitHubError, and the `x-ratelimit-*` headers — on errors too.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.context import Context
from sandbox.github import gql, today
from sandbox.github.accounts import USER_ID, Accounts
from sandbox.github.errors import DOCS, GRAPHQL_DOCS, REST_DOCS, GitHubError, bad_json, not_found
from sandbox.github.gql_resolvers import Env
from sandbox.github.ratelimit import UNAUTHENTICATED_LIMIT, Outcome, RateLimiter
from sandbox.github.repos import Repos
from sandbox.github.rest import Rest
from sandbox.github.shapes import Shapes
from sandbox.github.smarthttp import GitHttp

Handler = Callable[[Request], Awaitable[Response]]
# What a classic PAT made for deploys carries (gh checks these when an operation is refused).
OAUTH_SCOPES = "delete_repo, read:org, repo, workflow"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def api_token(header: str | None) -> str | None:
    """The token in `token T`, `Bearer T` or Basic `user:T`; None if there is no header."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer"):
        return value.strip()
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return password or user
    return ""


class Api:
    def __init__(self, ctx: Context, limiter: RateLimiter, tokens: today.Tokens) -> None:
        self.token = ctx.identity.github_token
        self.limiter = limiter
        self.tokens = tokens

    def granted(self, request: Request) -> dict[str, str] | None:
        """A fine-grained token's permissions; None for the sandbox's token (it holds all)."""
        given = api_token(request.headers.get("authorization")) or ""
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return self.tokens.permissions(given)

    def authenticate(self, request: Request, resource: str) -> Response | None:
        """None when the token is the sandbox's or a fine-grained one; otherwise the 401."""
        header = request.headers.get("authorization")
        given = api_token(header)
        if given and (
            hmac.compare_digest(given.encode(), self.token.encode())
            or self.tokens.permissions(given) is not None
        ):
            return None
        client = request.client.host if request.client else "unknown"
        outcome = self.limiter.spend(f"ip:{client}", resource, UNAUTHENTICATED_LIMIT)
        docs = GRAPHQL_DOCS if resource == "graphql" else REST_DOCS
        if given is None:
            message = (
                "This endpoint requires you to be authenticated."
                if resource == "graphql"
                else "Requires authentication"
            )
        else:
            message = "Bad credentials"
        return self.finish(GitHubError(401, message).response(docs), outcome)

    def finish(
        self, response: Response, outcome: Outcome, version: str = today.DEFAULT_VERSION
    ) -> Response:
        response.headers.update(outcome.headers())
        response.headers["x-github-api-version-selected"] = version
        response.headers["x-github-media-type"] = "github.v3; format=json"
        response.headers["x-github-request-id"] = secrets.token_hex(8).upper()
        return response

    def endpoint(
        self,
        handler: Handler,
        doc: str,
        resource: str = "core",
        counted: bool = True,
        needs: dict[str, str] | None = None,
    ) -> Handler:
        async def run(request: Request) -> Response:
            try:
                version = today.version(request)
            except GitHubError as e:
                return e.response(doc)
            refused = self.authenticate(request, resource)
            if refused is not None:
                return refused
            granted = self.granted(request)
            if granted is not None and needs is not None and not today.reaches(granted, needs):
                outcome = self.limiter.spend("token", resource)
                return self.finish(today.refusal(needs).response(doc), outcome, version)
            spend = self.limiter.spend if counted else self.limiter.peek
            outcome = spend("token", resource)
            if not outcome.allowed:
                error = GitHubError(
                    403,
                    f"API rate limit exceeded for user ID {USER_ID}. If you reach out to GitHub "
                    "Support for help, please include the request ID.",
                    doc=DOCS["rate-limited"],
                )
                return self.finish(error.response(), outcome, version)
            try:
                response = await handler(request)
            except GitHubError as e:
                response = e.response(doc)
            if granted is None:  # a classic token's scopes; fine-grained tokens have none
                response.headers["x-oauth-scopes"] = OAUTH_SCOPES
            return self.finish(response, outcome, version)

        return run


def _graphql_handler(env_factory: Callable[[], Env], api: Api) -> Handler:
    async def graphql(request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise bad_json() from None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return JSONResponse(
                {
                    "errors": [
                        {"message": "A query attribute must be specified and must be a string."}
                    ]
                }
            )
        variables: Any = payload.get("variables") or {}
        if isinstance(variables, str):
            try:
                variables = json.loads(variables) or {}
            except ValueError:
                variables = None
        if not isinstance(variables, dict):
            return JSONResponse({"errors": [{"message": "Variables are invalid JSON."}]})
        name = payload.get("operationName")
        env = env_factory()
        env.rate = api.limiter.peek("token", "graphql")
        result = await run_in_threadpool(
            gql.run, env, payload["query"], variables, name if isinstance(name, str) else None
        )
        return JSONResponse(result)

    return graphql


def build_app(ctx: Context, repos: Repos, tokens: today.Tokens) -> Starlette:
    accounts = Accounts(ctx)
    shapes = Shapes(accounts, ctx.urls.host)
    limiter = RateLimiter(ctx.clock.now)
    api = Api(ctx, limiter, tokens)
    rest = Rest(repos, accounts, shapes, limiter)

    routes: list[BaseRoute] = []
    for method, path, handler, doc in rest.table():
        counted = path != "/rate_limit"
        routes.append(
            Route(
                f"/api/v3{path}",
                api.endpoint(handler, DOCS[doc], counted=counted, needs=today.needs(method, path)),
                methods=[method],
            )
        )

    async def unknown(request: Request) -> Response:
        raise not_found()

    routes.append(
        Route("/api/v3/{rest:path}", api.endpoint(unknown, REST_DOCS), methods=ALL_METHODS)
    )
    routes.append(Route("/api/v3", api.endpoint(unknown, REST_DOCS), methods=ALL_METHODS))
    graphql = _graphql_handler(lambda: Env(repos, accounts, shapes), api)
    routes.append(
        Route("/api/graphql", api.endpoint(graphql, GRAPHQL_DOCS, "graphql"), methods=["POST"])
    )
    git = GitHttp(ctx, repos, tokens)
    routes.append(Route("/{owner}/{repo}/{rest:path}", git.handle, methods=["GET", "POST"]))

    async def fallback(request: Request) -> Response:
        return JSONResponse({"message": "Not Found"}, status_code=404)

    routes.append(Route("/{path:path}", fallback, methods=ALL_METHODS))
    return Starlette(routes=routes)
