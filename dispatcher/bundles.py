"""The build directory as a bundle a Kubernetes pod fetches: a deterministic tar.gz and a
short-lived signed link to it.

A runner pod has no shared host path to the dispatcher's build directory. The dispatcher serves
the directory as one `tar.gz` at `GET /v1/bundles/{token}`; the pod's init container fetches it
into an emptyDir. The token names one (deployment, attempt) and an expiry, signed with
HMAC-SHA256 under `FORGE_BUNDLE_SECRET` (shared by every dispatcher replica, so any replica
answers):

    v1.<base64url("<deployment id>:<attempt>:<expires at, unix s>")>.<base64url(hmac)>

It grants reading that deployment's build directory until it expires, nothing else. It is a
credential, so the launcher puts the URL in the deploy's Secret (never in the pod spec) and
nothing here logs it.

The bundle is deterministic: entries sorted by path, mtime 0, uid/gid 0, no owner names, modes
normalised to 0644/0755 (0755 for an executable file), gzip header without a time — the same
directory always gives the same bytes. `.git/` and `node_modules/` are left out (the runner
prunes them from its work copy anyway); a symlink is kept only when it points inside the
directory, as the runner's own build-directory check requires; anything else that is not a
regular file or a directory is refused.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dispatcher.core.ports import check_attempt
from runner import events as runner_events

TOKEN_VERSION = "v1"  # noqa: S105 - a format tag, not a secret
MAX_BUNDLE_BYTES = 256 * 1024**2  # compressed; a build directory is source, not node_modules
MIN_SECRET_BYTES = 32
PRUNED_DIRS = frozenset({".git", "node_modules"})

_DOMAIN = b"forge-bundle-v1\n"  # the signature covers this prefix: no other HMAC use collides


class BundleError(Exception):
    """Why a bundle request is refused; `status` is the HTTP status the route answers with."""

    status = 400


class BundleDenied(BundleError):
    """The token is malformed, forged or expired (the message says which, not the token)."""

    status = 403


class BundleNotFound(BundleError):
    """The token is good but names no build directory the dispatcher still has."""

    status = 404


class BundleTooLarge(BundleError):
    status = 413


@dataclass(frozen=True)
class BundleGrant:
    """What a valid token grants: this deployment's build directory, until `expires_at`."""

    deployment_id: str
    attempt: int
    expires_at: int


# ---- tokens ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the bundle secret must be at least {MIN_SECRET_BYTES} bytes (FORGE_BUNDLE_SECRET)"
        )


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + payload, hashlib.sha256).digest()


def make_token(secret: bytes, deployment_id: str, attempt: int, expires_at: int) -> str:
    """A URL-safe token granting this (deployment, attempt)'s bundle until `expires_at`."""
    _check_secret(secret)
    check_attempt(deployment_id, attempt)
    payload = f"{deployment_id}:{attempt}:{int(expires_at)}".encode()
    return f"{TOKEN_VERSION}.{_b64(payload)}.{_b64(_signature(secret, payload))}"


def check_token(secret: bytes, token: str, now: float) -> BundleGrant:
    """The grant of a genuine, unexpired token; else `BundleDenied` saying why."""
    _check_secret(secret)
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION or len(token) > 512:
        raise BundleDenied("bundle token is malformed")
    try:
        payload, signature = _unb64(parts[1]), _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise BundleDenied("bundle token is malformed") from None
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        raise BundleDenied("bundle token signature does not match")
    fields = payload.decode("ascii", errors="replace").split(":")
    if len(fields) != 3:
        raise BundleDenied("bundle token is malformed")
    try:
        deployment_id = runner_events.deployment_id(fields[0])
        attempt, expires_at = int(fields[1]), int(fields[2])
    except ValueError:
        raise BundleDenied("bundle token is malformed") from None
    if now >= expires_at:
        raise BundleDenied("bundle token has expired")
    return BundleGrant(deployment_id, attempt, expires_at)


def bundle_url(
    base_url: str, secret: bytes, deployment_id: str, attempt: int, expires_at: int
) -> str:
    """`<base_url>/v1/bundles/<token>`: what the deploy's Secret hands the init container."""
    token = make_token(secret, deployment_id, attempt, expires_at)
    return f"{base_url.rstrip('/')}/v1/bundles/{token}"


# ---- the bundle --------------------------------------------------------------------------------


def _entries(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of everything to pack, sorted; refuses what cannot be packed."""
    found: list[tuple[str, Path]] = []
    for current, dirs, names in os.walk(root, followlinks=False):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if d not in PRUNED_DIRS)
        for name in [*dirs, *names]:
            path = here / name
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = (path.parent / path.readlink()).resolve()
                if target != root and root not in target.parents:
                    raise BundleError(f"build directory: symlink {rel} points outside it")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BundleError(f"build directory: {rel} is not a regular file or directory")
            found.append((rel, path))
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return sorted(found)


def _member(name: str, path: Path) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = str(path.readlink())
        info.mode = 0o777
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = path.lstat().st_size
        info.mode = 0o755 if mode & stat.S_IXUSR else 0o644
    return info


def make_bundle(build_dir: Path, *, max_bytes: int = MAX_BUNDLE_BYTES) -> bytes:
    """The deterministic tar.gz of `build_dir` (see the module's docstring)."""
    root = Path(build_dir).resolve()
    if not root.is_dir():
        raise BundleNotFound(f"build directory {build_dir} does not exist")
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in _entries(root):
            info = _member(name, path)
            if info.isreg():
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)
            if raw.tell() > max_bytes:
                raise BundleTooLarge(f"the build directory packs to more than {max_bytes} bytes")
    data = raw.getvalue()
    if len(data) > max_bytes:
        raise BundleTooLarge(f"the build directory packs to more than {max_bytes} bytes")
    return data


def serve_bundle(
    token: str,
    *,
    secret: bytes,
    build_dir_of: Callable[[str, int], Path | None],
    now: float,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> bytes:
    """The body of `GET /v1/bundles/{token}` (`application/gzip`).

    `build_dir_of(deployment_id, attempt)` returns the deployment's resolved build directory,
    or None when the deployment is unknown or that attempt is not one it launched. Raises a
    `BundleError` whose `status` (403, 404, 413, 400) and message are the answer.
    """
    grant = check_token(secret, token, now)
    build_dir = build_dir_of(grant.deployment_id, grant.attempt)
    if build_dir is None:
        raise BundleNotFound(f"no build directory for deployment {grant.deployment_id}")
    return make_bundle(build_dir, max_bytes=max_bytes)


# ---- the pod's side ----------------------------------------------------------------------------

# The init container's program, the client of `serve_bundle`, run by the image's Python 3.11:
# `python -I -c FETCH_SCRIPT <url file> <destination> <max bytes> [<retry pause, s>]`. It never
# prints the URL (the token is a credential), streams the tar.gz (no bundle-sized buffer),
# retries what may pass (connection errors, 5xx, 429) five times, and unpacks only directories,
# regular files and symlinks whose target stays inside, never writing through a symlink: the
# image's Python (Debian's 3.11.2) predates tarfile's extraction filters, so the checks are
# done here.
FETCH_SCRIPT = """\
import http.client, os, posixpath, sys, tarfile, time, urllib.error, urllib.request, zlib
url_file, dest, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0  # seconds, times the attempt number
def fail(why):
    sys.stderr.write("fetch-build: " + why + "\\n")
    sys.exit(1)
class Capped:
    def __init__(self, raw):
        self.raw, self.seen = raw, 0
    def read(self, size=-1):
        data = self.raw.read(size)
        self.seen += len(data)
        if self.seen > limit:
            raise ValueError("the bundle is larger than %d bytes" % limit)
        return data
def inside(name, whole=True):
    path = posixpath.normpath(name)
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise ValueError("unsafe path in the bundle: %r" % name)
    parts = name.split("/") if whole else path.split("/")
    for depth in range(1, len(parts)):
        prefix = posixpath.normpath("/".join(parts[:depth]))
        if prefix == ".." or prefix.startswith("../"):
            raise ValueError("unsafe path in the bundle: %r" % name)
        if os.path.islink(os.path.join(dest, prefix)):
            raise ValueError("the bundle goes through a symlink: %r" % name)
    return path
def unpack(response):
    with tarfile.open(fileobj=Capped(response), mode="r|gz") as tar:
        for member in tar:
            rel = inside(member.name, whole=False)
            target = os.path.join(dest, rel)
            if rel == "." and member.isdir():
                continue
            if rel == ".":
                raise ValueError("unsafe path in the bundle: %r" % member.name)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.isfile():
                if os.path.lexists(target):
                    raise ValueError("duplicate entry in the bundle: %r" % member.name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "xb") as out:
                    while True:
                        chunk = src.read(65536)
                        if not chunk:
                            break
                        out.write(chunk)
                os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
            elif member.issym():
                if member.linkname.startswith("/"):
                    raise ValueError("absolute symlink in the bundle: %r" % member.name)
                inside(posixpath.join(posixpath.dirname(rel), member.linkname) + "/.")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(member.linkname, target)
            else:
                raise ValueError("unsupported entry in the bundle: %r" % member.name)
try:
    with open(url_file) as fh:
        url = fh.read().strip()
except OSError as e:
    fail("cannot read the bundle URL file: %s" % e.strerror)
if not url.startswith(("http://", "https://")):
    fail("the bundle URL is not an http(s) URL")
for attempt in range(1, 6):
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            unpack(response)
        sys.stderr.write("fetch-build: build directory unpacked\\n")
        sys.exit(0)
    except urllib.error.HTTPError as e:
        if e.code < 500 and e.code != 429:
            fail("the dispatcher refused the bundle: HTTP %d" % e.code)
        why = "HTTP %d" % e.code
    except ValueError as e:
        fail(str(e))
    except (urllib.error.URLError, OSError, http.client.HTTPException, tarfile.TarError,
            EOFError, zlib.error) as e:
        why = type(e).__name__ + ": " + str(getattr(e, "reason", e))
    if attempt == 5:
        fail("the bundle could not be fetched: " + why)
    sys.stderr.write("fetch-build: attempt %d failed (%s); retrying\\n" % (attempt, why))
    for root, dirs, files in os.walk(dest, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                os.rmdir(os.path.join(root, name))
    time.sleep(pause * attempt)
"""
