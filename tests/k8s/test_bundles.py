"""The build bundle: a deterministic tar.gz, the signed short-lived token, the route's handler,
and the init container's fetch script run for real (this interpreter, and the runner image's
own Python in Docker) against a loopback server, including hostile bundles."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatcher import bundles
from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.k8s.fake_apiserver import serve
from tests.support.clis import REPO

SECRET = b"k" * 32
EXAMPLE = REPO / "examples" / "hello-app"


def digest(root: Path) -> dict[str, str]:
    """Every entry under `root`: its kind, mode bits that matter, and content or link."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                executable = bool(path.stat().st_mode & 0o100)
                found[rel] = f"file:{executable}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return found


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "deep" / "page.tsx").write_text("export default 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o750)
    (root / "link-to-src").symlink_to("src")
    (root / "src" / "up").symlink_to("../run.sh")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "index.js").write_text("big\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / ".env").write_text("A=1\n")
    return root


# ---- the bundle --------------------------------------------------------------------------------


def test_the_bundle_is_deterministic(build: Path) -> None:
    first = bundles.make_bundle(build)
    os.utime(build / "run.sh", (1, 1))
    (build / "src" / "deep" / "page.tsx").chmod(0o600)
    assert bundles.make_bundle(build) == first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "node_modules" not in names and ".git" not in names and ".env" in names
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: m.mode for m in members if m.isreg()}
    assert modes["run.sh"] == 0o755 and modes["src/deep/page.tsx"] == 0o644
    links = {m.name: m.linkname for m in members if m.issym()}
    assert links == {"link-to-src": "src", "src/up": "../run.sh"}


def test_what_cannot_be_bundled_is_refused(build: Path, tmp_path: Path) -> None:
    (build / "escape").symlink_to(tmp_path)
    with pytest.raises(bundles.BundleError, match="symlink escape points outside"):
        bundles.make_bundle(build)
    (build / "escape").unlink()
    os.mkfifo(build / "pipe")
    with pytest.raises(bundles.BundleError, match="pipe is not a regular file"):
        bundles.make_bundle(build)
    (build / "pipe").unlink()
    (build / "big.bin").write_bytes(os.urandom(200_000))
    with pytest.raises(bundles.BundleTooLarge):
        bundles.make_bundle(build, max_bytes=100_000)
    with pytest.raises(bundles.BundleNotFound):
        bundles.make_bundle(tmp_path / "missing")


# ---- tokens ------------------------------------------------------------------------------------


def test_a_token_grants_one_attempt_until_it_expires() -> None:
    token = bundles.make_token(SECRET, "dep_abc", 2, 1000)
    assert bundles.check_token(SECRET, token, now=999.0) == bundles.BundleGrant("dep_abc", 2, 1000)
    with pytest.raises(bundles.BundleDenied, match="expired"):
        bundles.check_token(SECRET, token, now=1000.0)
    with pytest.raises(bundles.BundleDenied, match="signature"):
        bundles.check_token(b"o" * 32, token, now=0)
    version, payload, signature = token.split(".")
    forged = bundles._b64(b"dep_abc:3:1000")
    with pytest.raises(bundles.BundleDenied, match="signature"):
        bundles.check_token(SECRET, f"{version}.{forged}.{signature}", now=0)
    for bad in ("", "v1", "v2." + payload + "." + signature, "v1.!!.!!", "v1.a.b.c", "x" * 600):
        with pytest.raises(bundles.BundleDenied, match=r"malformed|signature"):
            bundles.check_token(SECRET, bad, now=0)
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


def test_token_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        bundles.make_token(b"short", "d", 1, 1)
    with pytest.raises(ValueError, match="deployment id"):
        bundles.make_token(SECRET, "a:b", 1, 1)
    with pytest.raises(ValueError, match="attempt"):
        bundles.make_token(SECRET, "d", 0, 1)


def test_serve_bundle_answers_with_the_build_or_a_status(build: Path) -> None:
    token = bundles.make_token(SECRET, "dep_abc", 1, 2000)
    asked: list[tuple[str, int]] = []

    def lookup(deployment_id: str, attempt: int) -> Path | None:
        asked.append((deployment_id, attempt))
        return build if deployment_id == "dep_abc" else None

    body = bundles.serve_bundle(token, secret=SECRET, build_dir_of=lookup, now=1000)
    assert body == bundles.make_bundle(build) and asked == [("dep_abc", 1)]
    other = bundles.make_token(SECRET, "dep_gone", 1, 2000)
    with pytest.raises(bundles.BundleNotFound) as gone:
        bundles.serve_bundle(other, secret=SECRET, build_dir_of=lookup, now=1000)
    assert gone.value.status == 404
    with pytest.raises(bundles.BundleDenied) as late:
        bundles.serve_bundle(token, secret=SECRET, build_dir_of=lookup, now=3000)
    assert late.value.status == 403 and len(asked) == 2  # no lookup for a refused token


# ---- the fetch script, for real ----------------------------------------------------------------


Routes = dict[str, Callable[[], tuple[int, bytes]]]


@pytest.fixture
def files_server() -> Iterator[tuple[str, Routes]]:
    routes: Routes = {}

    def answer(request: Request) -> Response:
        status, body = routes[request.path_params["name"]]()
        return Response(body, status_code=status, media_type="application/gzip")

    app = Starlette(routes=[Route("/v1/bundles/{name}", answer)])
    with serve(app) as url:
        yield url, routes


def fetch(url: str, dest: Path, limit: int = 10**6) -> subprocess.CompletedProcess[str]:
    url_file = dest.parent / "url"
    url_file.write_text(url + "\n")
    dest.mkdir(exist_ok=True)
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            bundles.FETCH_SCRIPT,
            str(url_file),
            str(dest),
            str(limit),
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_fetch_script_unpacks_the_bundle_exactly(
    build: Path, tmp_path: Path, files_server: tuple[str, Routes]
) -> None:
    url, routes = files_server
    body = bundles.make_bundle(build)
    routes["good"] = lambda: (200, body)
    result = fetch(f"{url}/v1/bundles/good", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    expected = {
        k: v for k, v in digest(build).items() if not k.startswith(("node_modules", ".git"))
    }
    assert digest(tmp_path / "out") == expected


def test_the_fetch_script_retries_what_may_pass(
    build: Path, tmp_path: Path, files_server: tuple[str, Routes]
) -> None:
    url, routes = files_server
    answers = iter([(503, b""), (200, bundles.make_bundle(build)[:50]), (429, b"")])
    routes["flaky"] = lambda: next(answers, (200, bundles.make_bundle(build)))
    result = fetch(f"{url}/v1/bundles/flaky", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("retrying") == 3
    assert "src/deep/page.tsx" in digest(tmp_path / "out")


def test_a_refused_bundle_fails_without_printing_the_url(
    tmp_path: Path, files_server: tuple[str, Routes]
) -> None:
    url, routes = files_server
    routes["tok-SECRET-PART"] = lambda: (403, b"")
    result = fetch(f"{url}/v1/bundles/tok-SECRET-PART", tmp_path / "out")
    assert result.returncode == 1
    assert "refused the bundle: HTTP 403" in result.stderr
    assert "SECRET-PART" not in result.stderr + result.stdout


def hostile(*entries: tuple[str, str, bytes]) -> bytes:
    """A tar.gz of (name, kind, content-or-link) entries, in that order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "link": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "char": tarfile.CHRTYPE,
            }[kind]
            info.linkname = data.decode()
            tar.addfile(info)
    return raw.getvalue()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ((("../evil", "file", b"x"),), "unsafe path"),
        ((("a/../../evil", "file", b"x"),), "unsafe path"),
        ((("/tmp/evil", "file", b"x"),), "unsafe path"),
        ((("l", "link", b"/etc"),), "absolute symlink"),
        ((("l", "link", b"../.."),), "unsafe path"),
        ((("d", "dir", b""), ("d/l", "link", b".."), ("d/l2", "link", b"l/..")), "symlink"),
        ((("l", "link", b"."), ("l/x", "file", b"x")), "through a symlink"),
        ((("h", "hard", b"/etc/passwd"),), "unsupported entry"),
        ((("f", "fifo", b""),), "unsupported entry"),
        ((("c", "char", b""),), "unsupported entry"),
        ((("x", "file", b"1"), ("x", "file", b"2")), "duplicate entry"),
        ((("big", "file", os.urandom(300_000)),), "larger than"),
    ],
)
def test_hostile_bundles_are_refused_and_nothing_lands_outside(
    entries: tuple[tuple[str, str, bytes], ...],
    message: str,
    tmp_path: Path,
    files_server: tuple[str, Routes],
) -> None:
    url, routes = files_server
    body = hostile(*entries)
    routes["evil"] = lambda: (200, body)
    sandbox = tmp_path / "box"
    sandbox.mkdir()
    before = set(tmp_path.rglob("*"))
    result = fetch(f"{url}/v1/bundles/evil", sandbox / "out", limit=100_000)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    outside = {p for p in set(tmp_path.rglob("*")) - before if sandbox / "out" not in p.parents}
    assert outside <= {sandbox / "out", sandbox / "url"}


def test_a_tarball_made_by_tar_unpacks_too(
    build: Path, tmp_path: Path, files_server: tuple[str, Routes]
) -> None:
    made = tmp_path / "by-tar.tgz"
    subprocess.run(["tar", "-C", str(build), "-czf", str(made), "."], check=True)
    url, routes = files_server
    routes["tar"] = lambda: (200, made.read_bytes())
    result = fetch(f"{url}/v1/bundles/tar", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert digest(tmp_path / "out") == digest(build)


@pytest.mark.docker
def test_the_fetch_script_runs_in_the_runner_image(
    docker_client: Any,  # noqa: F811
    runner_image: str,  # noqa: F811
    build: Path,
    tmp_path: Path,
    files_server: tuple[str, Routes],
) -> None:
    """As the init container runs it: the image's Python (3.11.2, no tarfile filters), uid
    10001, read-only root, no capabilities; the URL file mounted read-only."""
    url, routes = files_server
    body = bundles.make_bundle(build)
    routes["img"] = lambda: (200, body)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    url_file = tmp_path / "url"
    url_file.write_text(f"{url}/v1/bundles/img\n")
    url_file.chmod(0o444)
    box = docker_client.containers.run(
        runner_image,
        entrypoint=["/opt/forge/venv/bin/python", "-I", "-c", bundles.FETCH_SCRIPT],
        command=["/run/forge/bundle/url", "/build", str(bundles.MAX_BUNDLE_BYTES)],
        name=f"forge-fetch-test-{os.getpid()}-{time.monotonic_ns()}",
        user="10001:10001",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        network_mode="host",
        mounts=[
            {"Type": "bind", "Source": str(out), "Target": "/build", "ReadOnly": False},
            {
                "Type": "bind",
                "Source": str(url_file),
                "Target": "/run/forge/bundle/url",
                "ReadOnly": True,
            },
        ],
        detach=True,
    )
    try:
        status = box.wait(timeout=120)["StatusCode"]
        logs = box.logs().decode()
    finally:
        box.remove(force=True)
    assert status == 0, logs
    assert "build directory unpacked" in logs
    expected = {
        k: v for k, v in digest(build).items() if not k.startswith(("node_modules", ".git"))
    }
    assert digest(out) == expected
