"""The REST operations under /api/v3 (github.json), as handlers that raise GitHubError.

Authentication, the rate limit and the error bodies are applied around every handler by
`sandbox.github.app`; here each handler only reads the request and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.github import bare, validation
from sandbox.github.accounts import Account, Accounts
from sandbox.github.errors import GitHubError, archived, invalid_field, not_found
from sandbox.github.ratelimit import RateLimiter
from sandbox.github.repos import Record, Repos
from sandbox.github.shapes import Shapes

MAX_PER_PAGE = 100


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` (per_page/page) and the Link header pointing at the others."""
    per_page = min(max(_int(request.query_params.get("per_page"), 30), 1), MAX_PER_PAGE)
    page = max(_int(request.query_params.get("page"), 1), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    links = []

    def url(n: int) -> str:
        return str(request.url.include_query_params(page=n))

    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links = [f'<{url(min(page - 1, last))}>; rel="prev"', *links, f'<{url(1)}>; rel="first"']
    headers = {"Link": ", ".join(links)} if links else {}
    return items[(page - 1) * per_page : page * per_page], headers


def _sorted(request: Request, records: list[Record], default_sort: str) -> list[Record]:
    sort = request.query_params.get("sort", default_sort)
    field = {"created": "created_at", "updated": "updated_at", "pushed": "pushed_at"}.get(sort)
    direction = request.query_params.get("direction", "asc" if field is None else "desc")
    if field is None:
        keyed = sorted(records, key=lambda r: f"{r['owner']}/{r['name']}".lower())
    else:
        keyed = sorted(records, key=lambda r: (r[field], r["id"]))
    return list(reversed(keyed)) if direction == "desc" else keyed


def _initial_files(body: dict[str, Any], name: str) -> dict[str, bytes] | None:
    files: dict[str, bytes] = {}
    if body.get("auto_init"):
        readme = f"# {name}\n" + (f"{body['description']}\n" if body.get("description") else "")
        files["README.md"] = readme.encode()
    if body.get("gitignore_template"):
        files[".gitignore"] = f"# {body['gitignore_template']}.gitignore (sandbox)\n".encode()
    if body.get("license_template"):
        files["LICENSE"] = f"{body['license_template']} license (sandbox placeholder)\n".encode()
    return files or None


class Rest:
    def __init__(
        self, repos: Repos, accounts: Accounts, shapes: Shapes, limiter: RateLimiter
    ) -> None:
        self.repos = repos
        self.accounts = accounts
        self.shapes = shapes
        self.limiter = limiter

    # -- helpers ------------------------------------------------------------------------------
    def _counts(self, owner: Account) -> tuple[int, int]:
        records = self.repos.all(owner.login)
        private = sum(1 for r in records if r["private"])
        return len(records) - private, private

    def _repo(self, request: Request) -> Record:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        record = self.repos.get(owner, name)
        if record is not None:
            return record
        moved = self.repos.redirect(owner, name)
        if moved is not None:
            prefix = f"/api/v3/repos/{owner}/{name}"
            suffix = request.url.path[len(prefix) :] if request.url.path.startswith(prefix) else ""
            target = self.shapes.repo_api(moved) + suffix
            status = 301 if request.method == "GET" else 307
            message = "Moved Permanently" if status == 301 else "Temporary Redirect"
            raise GitHubError(status, message, headers={"Location": target}, url=target)
        raise not_found()

    def _json(self, record: Record, status: int = 200, **headers: str) -> JSONResponse:
        return JSONResponse(self.shapes.repository(record), status_code=status, headers=headers)

    # -- accounts -----------------------------------------------------------------------------
    async def user(self, request: Request) -> Response:
        return JSONResponse(self.accounts.private(*self._counts(self.accounts.user)))

    async def get_user(self, request: Request) -> Response:
        account = self.accounts.by_login(request.path_params["login"])
        if account is None:
            raise not_found()
        public, _ = self._counts(account)
        return JSONResponse(self.accounts.public(account, public))

    async def get_org(self, request: Request) -> Response:
        account = self.accounts.by_login(request.path_params["org"])
        if account is None or not account.is_org:
            raise not_found()
        return JSONResponse(self.accounts.organization(*self._counts(account)))

    async def rate_limit(self, request: Request) -> Response:
        return JSONResponse(self.limiter.overview("token"))

    # -- repository lists and creation --------------------------------------------------------
    async def list_org_repos(self, request: Request) -> Response:
        account = self.accounts.by_login(request.path_params["org"])
        if account is None or not account.is_org:
            raise not_found()
        kind = request.query_params.get("type", "all")
        records = [
            r
            for r in self.repos.all(account.login)
            if kind in ("all", "sources", "member")
            or (kind == "public" and not r["private"])
            or (kind == "private" and r["private"])
        ]
        page, headers = paginate(request, _sorted(request, records, "created"))
        return JSONResponse([self.shapes.repository(r) for r in page], headers=headers)

    async def list_user_repos(self, request: Request) -> Response:
        params = request.query_params
        kind = params.get("type")
        if kind is not None and ("visibility" in params or "affiliation" in params):
            raise invalid_field(
                "type", "If you specify visibility or affiliation, you cannot specify type."
            )
        affiliation = params.get("affiliation", "owner,collaborator,organization_member")
        wanted = set(affiliation.split(","))
        visibility = params.get("visibility", "all")
        user, org = self.accounts.user, self.accounts.org
        records = []
        for record in self.repos.all():
            mine = record["owner"] == user.login
            if (kind == "owner" and not mine) or (kind == "member" and mine):
                continue
            if kind is None and not (
                ("owner" in wanted and mine)
                or ("organization_member" in wanted and record["owner"] == org.login)
            ):
                continue
            if (kind == "public" or visibility == "public") and record["private"]:
                continue
            if (kind == "private" or visibility == "private") and not record["private"]:
                continue
            records.append(record)
        since, before = params.get("since"), params.get("before")
        records = [
            r
            for r in records
            if (not since or r["updated_at"] > since) and (not before or r["updated_at"] < before)
        ]
        page, headers = paginate(request, _sorted(request, records, "full_name"))
        return JSONResponse([self.shapes.repository(r) for r in page], headers=headers)

    async def create_org_repo(self, request: Request) -> Response:
        account = self.accounts.by_login(request.path_params["org"])
        if account is None or not account.is_org:
            raise not_found()
        return await self._create(request, account)

    async def create_user_repo(self, request: Request) -> Response:
        return await self._create(request, self.accounts.user)

    async def _create(self, request: Request, owner: Account) -> Response:
        raw = validation.parse_json(await request.body())
        body = validation.check(raw, validation.CREATE, required=("name",))
        name = validation.repo_name(body["name"])
        if "visibility" in body:
            body["private"] = body["visibility"] == "private"
        files = _initial_files(body, name)
        record = await run_in_threadpool(self.repos.create, owner, name, body, files)
        return self._json(record, 201, Location=self.shapes.repo_api(record))

    # -- one repository -----------------------------------------------------------------------
    async def get_repo(self, request: Request) -> Response:
        return self._json(self._repo(request))

    async def update_repo(self, request: Request) -> Response:
        raw = validation.parse_json(await request.body())
        record = self._repo(request)
        body = validation.check(raw, validation.UPDATE)
        if record["archived"] and body.get("archived") is not False:
            raise archived()
        if "visibility" in body:
            body["private"] = body.pop("visibility") == "private"
        if "name" in body:
            body["name"] = validation.repo_name(body["name"])
        body.pop("security_and_analysis", None)
        updated = await run_in_threadpool(self.repos.update, record, body)
        return self._json(updated)

    async def delete_repo(self, request: Request) -> Response:
        record = self._repo(request)
        await run_in_threadpool(self.repos.delete, record)
        return Response(status_code=204)

    async def get_topics(self, request: Request) -> Response:
        return JSONResponse({"names": self._repo(request)["topics"]})

    async def put_topics(self, request: Request) -> Response:
        raw = validation.parse_json(await request.body())
        record = self._repo(request)
        body = validation.check(raw, validation.TOPICS, required=("names",))
        topics = validation.topics(body["names"])
        if record["archived"]:
            raise archived()
        return JSONResponse({"names": self.repos.set_topics(record, topics)["topics"]})

    async def get_branch(self, request: Request) -> Response:
        record = self._repo(request)
        branch = request.path_params["branch"]
        path = self.repos.path(record)
        sha = bare.read_branch(path, branch) if bare.safe_ref_name(branch) else None
        if sha is None:
            raise GitHubError(404, "Branch not found")
        info = await run_in_threadpool(bare.commit, path, sha)
        return JSONResponse(self.shapes.branch(record, branch, info))

    async def get_commit(self, request: Request) -> Response:
        record = self._repo(request)
        ref = request.path_params["ref"]
        path = self.repos.path(record)
        if self.repos.head(record) is None and not await run_in_threadpool(bare.branches, path):
            raise GitHubError(409, "Git Repository is empty.")
        sha = await run_in_threadpool(bare.resolve, path, ref)
        if sha is None:
            raise GitHubError(422, f"No commit found for SHA: {ref}")
        info = await run_in_threadpool(bare.commit, path, sha)
        return JSONResponse(self.shapes.commit(record, info))

    # -- routing ------------------------------------------------------------------------------
    def table(self) -> list[tuple[str, str, Callable[[Request], Any], str]]:
        """(method, path, handler, docs key) for every operation."""
        repo = "/repos/{owner}/{repo}"
        return [
            ("GET", "/user", self.user, "user"),
            ("GET", "/users/{login}", self.get_user, "get-user"),
            ("GET", "/orgs/{org}", self.get_org, "get-org"),
            ("GET", "/orgs/{org}/repos", self.list_org_repos, "list-org-repos"),
            ("POST", "/orgs/{org}/repos", self.create_org_repo, "create-org-repo"),
            ("GET", "/user/repos", self.list_user_repos, "list-user-repos"),
            ("POST", "/user/repos", self.create_user_repo, "create-user-repo"),
            ("GET", repo, self.get_repo, "get-repo"),
            ("PATCH", repo, self.update_repo, "update-repo"),
            ("DELETE", repo, self.delete_repo, "delete-repo"),
            ("GET", f"{repo}/topics", self.get_topics, "get-topics"),
            ("PUT", f"{repo}/topics", self.put_topics, "put-topics"),
            ("GET", f"{repo}/branches/{{branch:path}}", self.get_branch, "get-branch"),
            ("GET", f"{repo}/commits/{{ref:path}}", self.get_commit, "get-commit"),
            ("GET", "/rate_limit", self.rate_limit, "rate-limit"),
        ]
