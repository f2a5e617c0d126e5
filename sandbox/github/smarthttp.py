"""git over HTTPS: `/<owner>/<repo>.git/...` served by the real `git http-backend` (CGI).

Authentication is GitHub's: Basic credentials whose password (or, with an empty or
`x-oauth-basic` password, whose username) is the token; any username is accepted. Without
credentials only a fetch from a public repo is allowed; everything else answers 401 with
`WWW-Authenticate: Basic realm="GitHub"` so git asks its credential helper, which is how gh's
push gets its token. The request body streams into the CGI and its output streams back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from sandbox.context import Context
from sandbox.github import today
from sandbox.github.bare import git_env
from sandbox.github.repos import Record, Repos

log = logging.getLogger("forge-sandbox.github")

_PASS_HEADERS = {
    "content-type": "CONTENT_TYPE",
    "content-length": "CONTENT_LENGTH",
    "content-encoding": "HTTP_CONTENT_ENCODING",
    "git-protocol": "HTTP_GIT_PROTOCOL",
}


def offered_token(header: str | None) -> str | None:
    """The token of a git request's Basic or Bearer credentials ("" when malformed)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        user, _, password = decoded.partition(":")
        return password if password not in ("", "x-oauth-basic") else user
    return value.strip() if scheme.lower() in ("bearer", "token") else ""


def git_credentials(header: str | None, token: str) -> bool | None:
    """True for the sandbox token, False for other credentials, None when there are none."""
    offered = offered_token(header)
    if offered is None:
        return None
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def _unauthorized(message: str) -> Response:
    return PlainTextResponse(
        message + "\n", status_code=401, headers={"WWW-Authenticate": 'Basic realm="GitHub"'}
    )


class GitHttp:
    def __init__(self, ctx: Context, repos: Repos, tokens: today.Tokens) -> None:
        self.ctx = ctx
        self.repos = repos
        self.tokens = tokens

    async def handle(self, request: Request) -> Response:
        owner = request.path_params["owner"]
        repo = request.path_params["repo"]
        rest = request.path_params["rest"]
        name = repo[:-4] if repo.endswith(".git") else repo
        if any(part in ("", ".", "..") for part in rest.split("/")):
            return PlainTextResponse("Not Found\n", status_code=404)
        service = request.query_params.get("service") if rest == "info/refs" else rest
        push = service == "git-receive-pack"
        credentials = git_credentials(
            request.headers.get("authorization"), self.ctx.identity.github_token
        )
        granted = self.tokens.permissions(offered_token(request.headers.get("authorization")) or "")
        if credentials is False and granted is not None:  # a fine-grained token: its contents
            if not today.reaches(granted, {"contents": "write" if push else "read"}):
                return PlainTextResponse(
                    f"Permission to {owner}/{name}.git denied to "
                    f"{self.ctx.identity.github_user}.\n",
                    status_code=403,
                )
            credentials = True
        record = self.repos.get(owner, name) or self.repos.redirect(owner, name)
        if credentials is False:
            return _unauthorized(
                "Invalid username or token. Password authentication is not supported for Git "
                "operations."
            )
        if credentials is None and (record is None or record["private"] or push):
            return _unauthorized("Authentication required.")
        if record is None:
            return PlainTextResponse("Repository not found.\n", status_code=404)
        if push and record["archived"]:
            return PlainTextResponse(
                "This repository was archived so it is read-only.\n", status_code=403
            )
        return await self._cgi(request, record, rest, authenticated=bool(credentials), push=push)

    async def _cgi(
        self, request: Request, record: Record, rest: str, authenticated: bool, push: bool
    ) -> Response:
        env = {
            **git_env(self.repos.root),
            "GIT_PROJECT_ROOT": str(self.repos.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": f"/{record['owner']}/{record['name']}.git/{rest}",
            "QUERY_STRING": request.url.query,
            "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
        }
        if authenticated:
            env["REMOTE_USER"] = self.ctx.identity.github_user
        for header, variable in _PASS_HEADERS.items():
            if header in request.headers:
                env[variable] = request.headers[header]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        output: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)

        async def feed() -> None:
            assert proc.stdin
            try:
                async for chunk in request.stream():
                    if chunk:
                        proc.stdin.write(chunk)
                        await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                proc.stdin.close()

        async def drain() -> None:
            assert proc.stdout
            while chunk := await proc.stdout.read(65536):
                await output.put(chunk)
            await output.put(None)

        reader = asyncio.create_task(drain())
        errors = asyncio.create_task(proc.stderr.read())
        # The whole request body goes in before the response starts: once it has started,
        # Starlette listens for a disconnect on the same receive channel and would swallow
        # body chunks. The output is read meanwhile so that neither side can block the other.
        await feed()
        status, headers, first = await _cgi_head(output)

        async def body() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                while (chunk := await output.get()) is not None:
                    yield chunk
                code = await proc.wait()
                stderr = await errors
                if code != 0:
                    log.warning("git http-backend exited %s: %s", code, stderr.decode()[-2000:])
                elif push and request.method == "POST":
                    await run_in_threadpool(self.repos.pushed, record["owner"], record["name"])
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                reader.cancel()
                errors.cancel()

        return StreamingResponse(body(), status_code=status, headers=headers)


async def _cgi_head(output: asyncio.Queue[bytes | None]) -> tuple[int, dict[str, str], bytes]:
    """The CGI Status and headers, and whatever body bytes came with them."""
    buffer = b""
    while b"\r\n\r\n" not in buffer and b"\n\n" not in buffer:
        chunk = await output.get()
        if chunk is None:
            await output.put(None)
            break
        buffer += chunk
    crlf, lf = buffer.find(b"\r\n\r\n"), buffer.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, rest = buffer[:crlf], buffer[crlf + 4 :]
    elif lf >= 0:
        head, rest = buffer[:lf], buffer[lf + 2 :]
    else:
        head, rest = buffer, b""
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key.strip():
            headers[key.strip()] = value.strip()
    return status, headers, rest
