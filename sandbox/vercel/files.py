"""`POST /v2/files`: content-addressed uploads (SHA-1 of the bytes), stored on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.vercel.errors import VercelError

SHA1 = re.compile(r"^[0-9a-f]{40}$")
MAX_FILE_BYTES = 100 * 1024 * 1024


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - Vercel's content digest is SHA-1


class FileStore:
    """Blobs under `root/<sha[:2]>/<sha>`; writing the same content twice is a no-op."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return bool(SHA1.match(sha)) and self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        sha = sha1_hex(data)
        target = self.path(sha)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{sha}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return sha

    def read(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()


def _declared_size(request: Request) -> int | None:
    for header in ("x-now-size", "content-length"):
        raw = request.headers.get(header)
        if raw is None:
            continue
        try:
            size = int(raw)
        except ValueError as e:
            raise VercelError(
                400, f"Invalid `{header}` header: expected a number of bytes", "bad_request"
            ) from e
        if size < 0:
            raise VercelError(400, f"Invalid `{header}` header", "bad_request")
        return size
    return None


async def upload_file(files: FileStore, request: Request, latency_s: float = 0.0) -> Response:
    """Stores the file; answers after `latency_s` (a real upload's round trip, scaled)."""
    digest = request.headers.get("x-vercel-digest") or request.headers.get("x-now-digest")
    if not digest:
        raise VercelError(400, "Missing `x-vercel-digest` header", "bad_request")
    digest = digest.strip().lower()
    if not SHA1.match(digest):
        raise VercelError(
            400, "Invalid `x-vercel-digest` header: expected a SHA1 hex digest", "bad_request"
        )
    size = _declared_size(request)
    if size is not None and size > MAX_FILE_BYTES:
        raise VercelError(413, "File size limit exceeded", "payload_too_large")
    data = await request.body()
    if size is not None and size != len(data):
        raise VercelError(
            400,
            f"The size of the file ({len(data)}) doesn't match the provided size ({size})",
            "bad_request",
        )
    actual = sha1_hex(data)
    if actual != digest:
        raise VercelError(
            400,
            f"SHA1 sum of the file ({actual}) doesn't match the provided SHA1 sum ({digest})",
            "bad_request",
        )
    await run_in_threadpool(files.put, data)
    if latency_s > 0:
        await asyncio.sleep(latency_s)
    return JSONResponse({"urls": []})
